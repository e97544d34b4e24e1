//! The walk over the document: typed reads that note every problem with its JSON path
//! and go on, so a check reports them all at once.

use super::*;

#[derive(Default)]
pub(super) struct Walker {
    pub(super) problems: Vec<Problem>,
    pub(super) notes: Vec<Problem>,
}

/// A JSON object being read: remembers which keys were consumed so unknown ones can be
/// reported (a misspelt `Prefx` must not silently widen a rule).
pub(super) struct Obj<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) path: String,
    pub(super) used: Vec<&'static str>,
}

impl Walker {
    pub(super) fn note(&mut self, path: &str, message: impl Into<String>) {
        self.notes.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn obj<'a>(&mut self, value: &'a Value, path: &str) -> Option<Obj<'a>> {
        match value {
            Value::Object(map) => Some(Obj {
                map,
                path: path.to_string(),
                used: Vec::new(),
            }),
            other => {
                self.problem(path, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    /// Reports keys nobody asked for.
    pub(super) fn finish(&mut self, obj: Obj<'_>) {
        for key in obj.map.keys() {
            if !obj.used.contains(&key.as_str()) {
                let expected = obj.used.join(", ");
                self.problem(
                    &format!("{}.{}", obj.path, key),
                    format!("unknown field (expected one of: {expected})"),
                );
            }
        }
    }

    pub(super) fn field<'a>(&mut self, obj: &mut Obj<'a>, name: &'static str) -> Option<&'a Value> {
        obj.used.push(name);
        obj.map.get(name).filter(|v| !v.is_null())
    }

    pub(super) fn string(
        &mut self,
        obj: &mut Obj<'_>,
        name: &'static str,
        required: bool,
    ) -> Option<String> {
        let path = format!("{}.{}", obj.path, name);
        match self.field(obj, name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(&path, format!("expected a string, found {}", kind(other)));
                None
            }
            None => {
                if required {
                    self.problem(&path, "is required");
                }
                None
            }
        }
    }

    pub(super) fn integer(&mut self, obj: &mut Obj<'_>, name: &'static str) -> Option<i64> {
        let path = format!("{}.{}", obj.path, name);
        match self.field(obj, name) {
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(other) => {
                self.problem(&path, format!("expected an integer, found {}", kind(other)));
                None
            }
            None => None,
        }
    }

    pub(super) fn boolean(&mut self, obj: &mut Obj<'_>, name: &'static str) -> Option<bool> {
        let path = format!("{}.{}", obj.path, name);
        match self.field(obj, name) {
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.problem(
                    &path,
                    format!("expected true or false, found {}", kind(other)),
                );
                None
            }
            None => None,
        }
    }

    /// `{"Status": "Enabled" | "Disabled"}` as S3 writes switches.
    pub(super) fn status_switch(&mut self, obj: &mut Obj<'_>, name: &'static str) -> Option<bool> {
        let value = self.field(obj, name)?;
        let path = format!("{}.{}", obj.path, name);
        let mut inner = self.obj(value, &path)?;
        let status = self.status(&mut inner);
        self.finish(inner);
        status
    }

    pub(super) fn status(&mut self, obj: &mut Obj<'_>) -> Option<bool> {
        let path = format!("{}.Status", obj.path);
        match self.string(obj, "Status", true)?.as_str() {
            "Enabled" => Some(true),
            "Disabled" => Some(false),
            other => {
                self.problem(
                    &path,
                    format!("must be \"Enabled\" or \"Disabled\", found \"{other}\""),
                );
                None
            }
        }
    }

    pub(super) fn enum_field<T: serde::de::DeserializeOwned>(
        &mut self,
        obj: &mut Obj<'_>,
        name: &'static str,
        allowed: &[&str],
    ) -> Option<T> {
        let path = format!("{}.{}", obj.path, name);
        let s = self.string(obj, name, false)?;
        match serde_json::from_value(Value::String(s.clone())) {
            Ok(v) => Some(v),
            Err(_) => {
                self.problem(
                    &path,
                    format!("\"{s}\" is not one of: {}", allowed.join(", ")),
                );
                None
            }
        }
    }

    pub(super) fn bucket_name(&mut self, name: &str, path: &str) {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !(3..=63).contains(&name.len()) || !ok_chars {
            self.problem(
                path,
                format!(
                    "\"{name}\" is not a valid bucket name (3-63 characters: a-z, 0-9, '-', '.')"
                ),
            );
        }
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
