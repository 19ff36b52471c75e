"""XMP packets: IPTC AI labelling and Dublin Core for photo tools, our fields in our namespace.

Written by hand (no Exempi needed) and read with defusedxml, which refuses entity expansion,
so an XML bomb is an error rather than a hang. Never holds `exif:UserComment`: exifreader
merges XMP over EXIF by local name and Civitai would then read an empty comment
(research/readers.md §5); for the same reason no property is named Model, Make or Artist.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from ..errors import ReadError
from ..limits import READ_XMP_MAX, XMP_TEXT_FIELD_MAX
from ..record import Record

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
NS_PROV = "https://github.com/comfyui-provenance/ns/1.0/"
PREFIX = "cprov"

# XML 1.0 cannot carry these at all, not even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_PACKET_HEAD = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_PACKET_TAIL = '<?xpacket end="w"?>'


def _text(value: str, limit: int) -> str:
    clean = _XML_INVALID.sub("\ufffd", value)
    if len(clean) > limit:
        clean = clean[:limit] + "…"
    return clean


def _simple_fields(record: Record) -> dict[str, Any]:
    gen = record.generation
    checkpoint = record.first_model("checkpoint", "unet", "diffusion_model")
    return {
        "Seed": gen.seed,
        "Steps": gen.steps,
        "CFGScale": gen.cfg,
        "Sampler": gen.sampler,
        "Scheduler": gen.scheduler,
        "Denoise": gen.denoise,
        "Guidance": gen.guidance,
        "Width": gen.width,
        "Height": gen.height,
        "Checkpoint": checkpoint.name if checkpoint else None,
        "SaveNode": record.provenance.save_node_id,
        "PromptID": record.provenance.prompt_id,
    }


# A LoRA's properties in cprov:Loras, in this order: (property, how to get it from the Model).
LORA_FIELDS = ("Name", "StrengthModel", "StrengthClip", "SHA256", "AutoV3")


def _loras(record: Record, text_limit: int) -> str:
    """cprov:Loras: an rdf:Bag of structures, one per LoRA, with its strengths and hashes (exiftool
    shows them as LorasName, LorasStrengthModel, ...)."""
    items = []
    for model in record.loras():
        values = (
            model.name,
            model.strength_model,
            model.strength_clip,
            *(model.hashes.get(k) for k in ("sha256", "autov3")),
        )
        parts = "".join(
            f"<{PREFIX}:{name}>{escape(_text(str(value), text_limit))}</{PREFIX}:{name}>"
            for name, value in zip(LORA_FIELDS, values, strict=True)
            if value is not None
        )
        items.append(f'     <rdf:li rdf:parseType="Resource">{parts}</rdf:li>')
    body = "\n".join(items)
    return f"   <{PREFIX}:Loras>\n    <rdf:Bag>\n{body}\n    </rdf:Bag>\n   </{PREFIX}:Loras>"


def build(
    record: Record, *, record_json: str | None = None, sidecar: str | None = None, text_limit: int = XMP_TEXT_FIELD_MAX
) -> bytes:
    """One XMP packet for a record; `record_json` embeds the canonical record verbatim."""
    prov = record.provenance
    gen = record.generation
    tool = f"{prov.generator.name} {prov.generator.version or ''}".strip()
    if prov.comfyui_version:
        tool += f" (ComfyUI {prov.comfyui_version})"
    attrs = {
        "xmp:CreatorTool": tool,
        "xmp:CreateDate": prov.created,
        "Iptc4xmpExt:DigitalSourceType": prov.digital_source_type,
        "Iptc4xmpExt:AISystemUsed": "ComfyUI",
        "Iptc4xmpExt:AISystemVersionUsed": prov.comfyui_version,
    }
    attrs.update({f"{PREFIX}:{k}": v for k, v in _simple_fields(record).items()})
    attr_text = "".join(f"\n    {k}={quoteattr(_text(str(v), text_limit))}" for k, v in attrs.items() if v is not None)
    elements = []
    if gen.positive:
        prompt = escape(_text(gen.positive, text_limit))
        elements.append(
            f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{prompt}</rdf:li></rdf:Alt></dc:description>'
        )
        elements.append(f"   <Iptc4xmpExt:AIPromptInformation>{prompt}</Iptc4xmpExt:AIPromptInformation>")
        elements.append(f"   <{PREFIX}:Positive>{prompt}</{PREFIX}:Positive>")
    if gen.negative:
        elements.append(f"   <{PREFIX}:Negative>{escape(_text(gen.negative, text_limit))}</{PREFIX}:Negative>")
    if record.loras():
        elements.append(_loras(record, text_limit))
    if sidecar:
        elements.append(f"   <{PREFIX}:Sidecar>{escape(_text(sidecar, text_limit))}</{PREFIX}:Sidecar>")
    if record_json is not None:
        elements.append(f"   <{PREFIX}:Record>{escape(record_json)}</{PREFIX}:Record>")
    body = "\n".join(elements)
    packet = (
        f'{_PACKET_HEAD}<x:xmpmeta xmlns:x="{NS_X}">\n'
        f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
        f'  <rdf:Description rdf:about=""\n    xmlns:dc="{NS_DC}"\n    xmlns:xmp="{NS_XMP}"'
        f'\n    xmlns:Iptc4xmpExt="{NS_IPTC_EXT}"\n    xmlns:{PREFIX}="{NS_PROV}"{attr_text}>\n'
        f"{body}\n  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n{_PACKET_TAIL}"
    )
    return packet.encode("utf-8")


def parse(packet: bytes) -> dict[str, Any]:
    """Our namespace's properties plus dc:description, from any XMP packet (safely); `Loras` is a list
    of {Name, StrengthModel, ...} strings (or, from an older packet, one comma-separated string)."""
    if len(packet) > READ_XMP_MAX:
        raise ReadError(f"XMP packet is {len(packet):,} bytes, over the {READ_XMP_MAX:,}-byte read limit")
    text = packet.decode("utf-8", errors="replace")
    start = text.find("<x:xmpmeta")
    if start == -1:
        start = text.find("<rdf:RDF")
    end = max(text.rfind("</x:xmpmeta>") + len("</x:xmpmeta>"), text.rfind("</rdf:RDF>") + len("</rdf:RDF>"))
    if start == -1 or end <= start:
        raise ReadError("XMP packet has no x:xmpmeta or rdf:RDF element")
    head = text[:start]
    try:
        # Any DOCTYPE (and so any entity) before the root is refused too, not just inside it.
        root = SafeET.fromstring(
            head[head.find("<!DOCTYPE") :] + text[start:end] if "<!DOCTYPE" in head else text[start:end]
        )
    except DefusedXmlException as err:
        raise ReadError(f"XMP refused: {type(err).__name__} (entity or DTD in the packet)") from err
    except SafeET.ParseError as err:
        raise ReadError(f"XMP is not well-formed XML: {err}") from err
    out: dict[str, Any] = {}
    for desc in root.iter(f"{{{NS_RDF}}}Description"):
        for key, value in desc.attrib.items():
            if key.startswith(f"{{{NS_PROV}}}"):
                out[key.split("}", 1)[1]] = value
        for child in desc:
            if child.tag == f"{{{NS_PROV}}}Loras" and len(child):
                out["Loras"] = [
                    {part.tag.split("}", 1)[1]: part.text or "" for part in li if part.tag.startswith(f"{{{NS_PROV}}}")}
                    for li in child.iter(f"{{{NS_RDF}}}li")
                ]
            elif child.tag.startswith(f"{{{NS_PROV}}}"):
                out[child.tag.split("}", 1)[1]] = child.text or ""
            elif child.tag == f"{{{NS_DC}}}description":
                li = child.find(f".//{{{NS_RDF}}}li")
                if li is not None and li.text:
                    out["description"] = li.text
    return out
