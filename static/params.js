// The algorithm parameter form, generated from the JSON schema that `/algorithms` lists.

function kindOf(schema) {
  if (schema.enum) return "enum";
  const types = schema.anyOf ? schema.anyOf.map((s) => s.type) : [schema.type];
  if (types.includes("array")) return "list";
  if (types.includes("boolean")) return "boolean";
  if (types.includes("integer")) return schema.anyOf ? "optional-number" : "integer";
  if (types.includes("number")) return schema.anyOf ? "optional-number" : "number";
  return "text";
}

/** Parameters only meaningful with scope "fixed". */
const FIXED_ONLY = new Set(["threshold", "thresholds"]);

export class ParamsForm {
  /**
   * @param {HTMLElement} container where the inputs go
   * @param {Function} onChange called after the user changes a value
   */
  constructor(container, onChange) {
    this.container = container;
    this.onChange = onChange;
    this.schema = {};
  }

  /** Build the inputs of one algorithm's parameters, with `values` filled in. */
  build(parameters, values = {}) {
    this.schema = parameters || {};
    this.container.replaceChildren();
    for (const [name, schema] of Object.entries(this.schema)) {
      const kind = kindOf(schema);
      const label = document.createElement("label");
      label.title = schema.description || "";
      label.dataset.param = name;
      let input;
      if (kind === "enum") {
        input = document.createElement("select");
        for (const v of schema.enum) input.add(new Option(v, v));
      } else {
        input = document.createElement("input");
        if (kind === "boolean") input.type = "checkbox";
        else if (kind === "integer" || kind === "number") {
          input.type = "number";
          if (schema.minimum !== undefined) input.min = schema.minimum;
          if (schema.maximum !== undefined) input.max = schema.maximum;
          input.step = kind === "integer" ? "1" : "0.5";
        } else {
          input.type = "text";
          input.placeholder = kind === "list" ? "comma-separated" : "";
        }
      }
      input.id = `param-${name}`;
      input.name = name;
      input.dataset.kind = kind;
      const title = (schema.title || name).toLowerCase();
      if (kind === "boolean") {
        label.className = "check";
        label.append(input, ` ${title}`);
      } else {
        if (kind === "list" || kind === "optional-number") label.className = "wide";
        label.append(`${title} `, input);
      }
      input.addEventListener("change", () => { this.updateVisibility(); this.onChange(); });
      this.container.append(label);
    }
    this.set(values);
  }

  /** Put values (or the schema defaults) into the inputs. */
  set(values) {
    for (const [name, schema] of Object.entries(this.schema)) {
      const input = this.container.querySelector(`#param-${name}`);
      const value = name in values ? values[name] : schema.default;
      if (input.type === "checkbox") input.checked = Boolean(value);
      else if (Array.isArray(value)) input.value = value.join(", ");
      else input.value = value === null || value === undefined ? "" : String(value);
    }
    this.updateVisibility();
  }

  updateVisibility() {
    const scope = this.container.querySelector("#param-scope");
    for (const name of FIXED_ONLY) {
      const label = this.container.querySelector(`label[data-param="${name}"]`);
      if (label) label.hidden = scope ? scope.value !== "fixed" : false;
    }
  }

  /** Current values that differ from the defaults (what goes into `algorithm_params`). */
  values() {
    const out = {};
    const scope = this.container.querySelector("#param-scope");
    for (const [name, schema] of Object.entries(this.schema)) {
      const input = this.container.querySelector(`#param-${name}`);
      if (FIXED_ONLY.has(name) && scope && scope.value !== "fixed") continue;
      let value;
      switch (input.dataset.kind) {
        case "boolean": value = input.checked; break;
        case "integer": value = input.value === "" ? schema.default : parseInt(input.value, 10); break;
        case "number": value = input.value === "" ? schema.default : parseFloat(input.value); break;
        case "optional-number": value = input.value.trim() === "" ? null : Number(input.value); break;
        case "list":
          value = input.value.trim() === "" ? null : input.value.split(",").map((v) => Number(v.trim()));
          break;
        default: value = input.value;
      }
      if (JSON.stringify(value) !== JSON.stringify(schema.default ?? null)) out[name] = value;
    }
    return out;
  }
}
