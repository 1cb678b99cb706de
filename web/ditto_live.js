// Go Live (Ditto): after the node runs, a button on it opens the live page with its avatar (the path the node returns
// in its "text" output, e.g. /ditto/live/?avatar=comfyui), served by this ComfyUI server.
import { app } from "../../scripts/app.js";

const NODE = "DittoGoLive";
const LABEL = "Open the live page";

app.registerExtension({
  name: "ditto.live",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const path = message?.text?.[0];
      if (typeof path !== "string" || !path.startsWith("/")) return;
      // the page lives on this server, under the same base as the UI (ComfyUI may sit behind a sub-path)
      const base = window.location.pathname.replace(/\/[^/]*$/, "");
      const href = `${window.location.origin}${base}${path}`;
      let button = this.widgets?.find((w) => w.name === LABEL);
      if (!button) {
        button = this.addWidget("button", LABEL, null, () => window.open(button.href, "_blank", "noopener"));
        button.serialize = false; // not a setting: saved workflows keep their widget values as they were
        button.options = { ...(button.options || {}), serialize: false }; // nor is it part of a queued prompt
      }
      button.href = href;
      button.tooltip = `Open ${href} in a new tab: pick the avatar and press Talk`;
      this.setDirtyCanvas?.(true, true);
    };
  },
});
