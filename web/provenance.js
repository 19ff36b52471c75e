/** ComfyUI loads this module (every .js under WEB_DIRECTORY): it registers the Provenance extension. */

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { createExtension } from "./lib/extension.js";

// Everything else lives in lib/, which never imports the frontend, so Node can test it with fakes.
app.registerExtension(createExtension({ app, api, doc: document, nav: navigator }));
