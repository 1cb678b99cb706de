// Load Ditto Models: after the node runs, a read-only line on it says where everything runs (the "text" the node
// returns in its ui output: device and precision, renderer path, the aux ONNX models' execution provider and, when
// they fell back to the CPU, why). The full line is also the widget's tooltip.
import { app } from "../../scripts/app.js";

const NODE = "DittoLoadModels";
const NAME = "runs on";

app.registerExtension({
  name: "ditto.devices",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const report = message?.text?.[0];
      if (typeof report !== "string" || !report) return;
      let line = this.widgets?.find((w) => w.name === NAME);
      if (!line) {
        const size = this.size ? [...this.size] : null;
        line = this.addWidget("text", NAME, "", () => {}, { serialize: false, read_only: true });
        line.serialize = false; // not a setting: saved workflows keep their widget values as they were
        // read-only: options.read_only for the Vue node renderer, no edit prompt on a click in the canvas. Not
        // `disabled`: the canvas draws a disabled widget without its value.
        line.onClick = () => {};
        if (size) {
          // room for the line, never smaller than the user made the node
          const min = this.computeSize?.() ?? size;
          this.setSize?.([Math.max(size[0], min[0]), Math.max(size[1], min[1])]);
        }
      }
      line.value = report;
      line.tooltip = report;
      this.setDirtyCanvas?.(true, true);
    };
  },
});
