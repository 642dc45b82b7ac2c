#!/usr/bin/env python3
"""Generates sdk/rust/src/generated.rs from the committed openapi.json: a Rust type for every
component schema and one async method per operation. `--check` exits 1 when the committed file
differs from what the spec gives (CI's drift check, via tests/sdks.rs).

Mapping: objects become structs (optional fields `Option<_>`, skipped when `None`); string
enums become enums with an `Other` catch-all; `oneOf` of objects tagged by a `type` constant
becomes an internally tagged enum; other `oneOf`s of references become untagged enums;
`Page_X` is the core's `Page<X>`; objects without properties are `serde_json::Value`.
"""

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = json.loads((ROOT / "openapi.json").read_text())
OUT = ROOT / "sdk" / "rust" / "src" / "generated.rs"
SCHEMAS = SPEC["components"]["schemas"]

# Handled by the hand-written core, or not for API clients.
SKIP_SCHEMAS = {"Problem"}
SKIP_OPERATIONS = {"cdp", "live", "stripe_webhook"}
KEYWORDS = {"type", "ref", "match", "move", "self", "struct", "enum", "fn", "mod", "use", "where", "loop", "async", "await"}
MAX_ENUM = 64


def camel(name):
    parts = re.split(r"[^A-Za-z0-9]+", name)
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


def field_name(name):
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return f"r#{snake}" if snake in KEYWORDS else snake


def doc(text, indent=""):
    if not text:
        return ""
    return "".join(f"{indent}/// {line}".rstrip() + "\n" for line in text.strip().splitlines())


def ref_name(ref):
    return ref.split("/")[-1]


class Gen:
    def __init__(self):
        self.items = []  # generated item texts, in order
        self.done = set()

    # -- types -------------------------------------------------------------------------------

    def nullable(self, schema):
        """(inner schema, is_nullable)."""
        if "oneOf" in schema:
            non_null = [s for s in schema["oneOf"] if s.get("type") != "null"]
            if len(non_null) == 1 and len(schema["oneOf"]) == 2:
                return non_null[0], True
        t = schema.get("type")
        if isinstance(t, list) and "null" in t:
            rest = [x for x in t if x != "null"]
            inner = dict(schema)
            inner["type"] = rest[0] if len(rest) == 1 else rest
            return inner, True
        return schema, False

    def rust_type(self, schema, hint):
        inner, nullable = self.nullable(schema)
        t = self.plain_type(inner, hint)
        return (f"Option<{t}>", True) if nullable else (t, False)

    def plain_type(self, s, hint):
        if "$ref" in s:
            name = ref_name(s["$ref"])
            if name.startswith("Page_"):
                return f"Page<{self.named(name[5:])}>"
            return self.named(name)
        if "allOf" in s and len(s["allOf"]) == 1:
            return self.plain_type(s["allOf"][0], hint)
        if "oneOf" in s:
            return self.define_one_of(hint, s)
        t = s.get("type")
        if t == "string":
            if "enum" in s and len(s["enum"]) <= MAX_ENUM:
                return self.define_enum(hint, s)
            return "String"
        if t == "integer":
            return "i64"
        if t == "number":
            return "f64"
        if t == "boolean":
            return "bool"
        if t == "array":
            item, _ = self.rust_type(s.get("items", {}), hint + "Item")
            return f"Vec<{item}>"
        if t == "object" or t is None:
            if s.get("properties"):
                return self.define_struct(hint, s)
            extra = s.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                value, _ = self.rust_type(extra, hint + "Value")
                return f"std::collections::BTreeMap<String, {value}>"
            return "serde_json::Value"
        return "serde_json::Value"

    def named(self, name):
        rust = camel(name)
        if name not in self.done and name not in SKIP_SCHEMAS:
            self.done.add(name)
            schema = SCHEMAS[name]
            produced = self.plain_type(schema, rust)
            if produced != rust:
                self.items.append(doc(schema.get("description")) + f"pub type {rust} = {produced};\n")
        return rust

    def define_enum(self, name, s):
        if name in self.done_enums:
            return name
        self.done_enums.add(name)
        variants = []
        for value in s["enum"]:
            variants.append(f'    #[serde(rename = "{value}")]\n    {camel(value) or "Empty"},\n')
        text = (
            doc(s.get("description"))
            + "#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]\n"
            + f"pub enum {name} {{\n"
            + "".join(variants)
            + "    /// A value this client does not know yet (the server is newer).\n"
            + "    #[serde(other)]\n    Other,\n}\n"
        )
        self.items.append(text)
        return name

    def fields(self, owner, s, skip=()):
        required = set(s.get("required", []))
        out = []
        all_optional = True
        defaultable = True
        for prop, ps in s.get("properties", {}).items():
            if prop in skip:
                continue
            ty, nullable = self.rust_type(ps, owner + camel(prop))
            optional = nullable or prop not in required
            if optional and not ty.startswith("Option<"):
                ty = f"Option<{ty}>"
            attrs = []
            fname = field_name(prop)
            if fname.removeprefix("r#") != prop:
                attrs.append(f'rename = "{prop}"')
            if ty.startswith("Option<"):
                attrs.append('default, skip_serializing_if = "Option::is_none"')
            else:
                all_optional = False
                if not (ty in ("String", "i64", "f64", "bool", "serde_json::Value") or ty.startswith(("Vec<", "std::collections::BTreeMap<"))):
                    defaultable = False
            text = doc(ps.get("description"), "    ")
            if attrs:
                text += f"    #[serde({', '.join(attrs)})]\n"
            text += f"    pub {fname}: {ty},\n"
            out.append(text)
        return out, (all_optional or defaultable)

    def define_struct(self, name, s):
        fields, default = self.fields(name, s)
        derives = "Debug, Clone, PartialEq, Serialize, Deserialize" + (", Default" if default else "")
        self.items.append(
            doc(s.get("description"))
            + f"#[derive({derives})]\n"
            + f"pub struct {name} {{\n"
            + "".join(fields)
            + "}\n"
        )
        return name

    def define_one_of(self, name, s):
        options = s["oneOf"]
        tagged = all(
            o.get("type") == "object" and "enum" in o.get("properties", {}).get("type", {})
            for o in options
        )
        if tagged:
            variants = []
            for o in options:
                tag = o["properties"]["type"]["enum"][0]
                fields, _ = self.fields(name + camel(tag), o, skip=("type",))
                body = "".join(
                    f"    {line.replace('pub ', '', 1) if line.lstrip().startswith('pub ') else line}\n"
                    for f in fields
                    for line in f.rstrip("\n").split("\n")
                )
                variants.append(
                    doc(o.get("description"), "    ")
                    + f'    #[serde(rename = "{tag}")]\n'
                    + (f"    {camel(tag)} {{\n{body}    }},\n" if fields else f"    {camel(tag)} {{}},\n")
                )
            self.items.append(
                doc(s.get("description"))
                + "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]\n"
                + '#[serde(tag = "type")]\n'
                + f"pub enum {name} {{\n"
                + "".join(variants)
                + "}\n"
            )
            return name
        variants = []
        for o in options:
            ty = self.plain_type(o, name + "Variant")
            variants.append(f"    {ty}({ty}),\n")
        self.items.append(
            doc(s.get("description"))
            + "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]\n"
            + "#[serde(untagged)]\n"
            + f"pub enum {name} {{\n"
            + "".join(variants)
            + "}\n"
        )
        return name

    # -- operations --------------------------------------------------------------------------

    def operation(self, path, method, op):
        name = op["operationId"]
        args, path_expr, query = [], path, None
        params = op.get("parameters", [])
        for p in params:
            if p["in"] == "path":
                arg = field_name(p["name"])
                args.append(f"{arg}: &str")
                path_expr = path_expr.replace("{" + p["name"] + "}", "{}")
        path_args = [field_name(p["name"]) for p in params if p["in"] == "path"]
        query_params = [p for p in params if p["in"] == "query"]
        if query_params:
            query = camel(name) + "Query"
            props = {p["name"]: dict(p.get("schema", {}), description=p.get("description")) for p in query_params}
            self.define_struct(query, {"type": "object", "properties": props, "description": f"Query of `{name}`."})
            args.append(f"query: &{query}")
        body_kind = None
        rb = op.get("requestBody")
        if rb and "application/json" in rb.get("content", {}):
            schema = rb["content"]["application/json"]["schema"]
            inner, nullable = self.nullable(schema)
            ty = self.plain_type(inner, camel(name) + "Body")
            if nullable or not rb.get("required"):
                args.append(f"body: Option<&{ty}>")
                body_kind = "optional"
            else:
                args.append(f"body: &{ty}")
                body_kind = "required"
        elif rb and "application/octet-stream" in rb.get("content", {}):
            args.append("content: &[u8]")
            body_kind = "content"
        code, response = next((c, r) for c, r in op["responses"].items() if c.startswith("2"))
        content = response.get("content", {})
        if "application/json" in content:
            ret = self.plain_type(content["application/json"]["schema"], camel(name) + "Response")
            call = "json"
        elif content and any(not k.startswith("text/plain") for k in content):
            ret, call = "Vec<u8>", "bytes"
        elif content:
            ret, call = "String", "text"
        else:
            ret, call = "()", "empty"
        if path_args:
            fmt = "format!(\"" + path_expr + "\", " + ", ".join(f"encode({a})" for a in path_args) + ")"
        else:
            fmt = f'"{path}".to_owned()'
        q = "Some(query)" if query else "None::<&()>"
        b = {"required": "Some(body)", "optional": "body", "content": "content", None: "None::<&()>"}[body_kind]
        if body_kind == "content":
            call += "_content"
        summary = (op.get("summary") or "").strip()
        description = (op.get("description") or "").strip()
        text = f"    /// `{method.upper()} {path}`\n"
        for part in (summary, description):
            if part:
                text += "    ///\n" + doc(part, "    ")
        text += (
            f"    pub async fn {name}(&self{''.join(', ' + a for a in args)}) -> Result<{ret}, Error> {{\n"
            f"        self.{call}(Method::{method.upper()}, {fmt}, {q}, {b}).await\n"
            "    }\n"
        )
        if query and any(p["name"] == "starting_after" for p in query_params) and ret.startswith("Page<"):
            item = ret[5:-1]
            text += (
                f"\n    /// Every item of `{name}`, fetching pages as the stream is read.\n"
                f"    pub fn {name}_all<'a>(&'a self{''.join(', ' + a for a in args if not a.startswith('query'))}, query: {query}) -> impl futures::Stream<Item = Result<{item}, Error>> + 'a {{\n"
                f"        self.paginate({fmt}, query)\n"
                "    }\n"
            )
        return text

    def run(self):
        self.done_enums = set()
        methods = []
        for path, item in SPEC["paths"].items():
            for method in ("get", "post", "put", "patch", "delete"):
                op = item.get(method)
                if op and op.get("operationId") not in SKIP_OPERATIONS:
                    methods.append(self.operation(path, method, op))
        for name in SCHEMAS:
            if not name.startswith("Page_") and name not in SKIP_SCHEMAS:
                self.named(name)
        header = (
            "// @generated by sdk/rust/generate.py from openapi.json — do not edit by hand.\n"
            "// Regenerate with `python3 sdk/rust/generate.py`; tests/sdks.rs fails when it drifts.\n\n"
            "#![allow(clippy::all, missing_docs)]\n\n"
            "use reqwest::Method;\nuse serde::{Deserialize, Serialize};\n\n"
            "use crate::{Client, Error, Page, encode};\n\n"
        )
        body = "\n".join(self.items)
        impl = "impl Client {\n" + "\n".join(methods) + "}\n"
        return header + body + "\n" + impl


def rustfmt(text):
    """The text as `cargo fmt` would leave it, so the committed file passes `cargo fmt --check`."""
    import subprocess

    done = subprocess.run(
        ["rustfmt", "--edition", "2024", "--emit", "stdout", "--quiet"],
        input=text, capture_output=True, text=True, check=True,
    )
    return done.stdout


def main():
    text = rustfmt(Gen().run())
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            print("sdk/rust/src/generated.rs is out of date: run python3 sdk/rust/generate.py", file=sys.stderr)
            sys.exit(1)
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main()
