"""An OpenAI-compatible image API served from ComfyUI's own routes (off unless switched on).

`/v1/models`, `/v1/images/generations`, `/v1/images/edits` and `/v1/chat/completions` answer as
OpenAI's do; a "model" is a workflow template whose inputs the request fills (found by the parser,
so nobody maps node ids by hand), and its output node is always the pack's save node, so every
image a client receives carries its provenance record. Requests reach ComfyUI through its own HTTP
API on loopback (`/prompt`, `/history`, `/view`, `/upload/image`, job cancel): its queue, its
validation, its on-prompt handlers. Nothing here imports ComfyUI; hooks/openai_routes.py mounts
the routes on ComfyUI's server.
"""
