//! Sprig's list, dict, math and conversion functions (the part of [`super::sprig`] that
//! works on collections and numbers).

use std::collections::{BTreeMap, BTreeSet};

use super::funcs::{FnResult, arity, arity_min, check_size, int_arg, str_arg};
use super::sprig::{empty, s, strslice, strval, to_float64, to_int64};
use super::value::{Value, from_json, to_json};
use super::yaml;

fn list_arg<'a>(name: &str, v: &'a Value) -> Result<&'a [Value], String> {
    match v {
        Value::List(items) => Ok(items),
        other => Err(format!("cannot {name} on type {}", other.type_name())),
    }
}

fn map_arg(v: &Value) -> Result<&super::value::Map, String> {
    match v {
        Value::Map(m) => Ok(m),
        Value::Nil => Err("invalid value; expected map[string]interface {}".into()),
        other => Err(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            other.type_name()
        )),
    }
}

/// Lists, dicts, math and conversions.
pub(super) fn call(name: &str, args: &[Value]) -> FnResult {
    let n = |count| arity(name, args, count);
    match name {
        "list" => Ok(Value::list(args.to_vec())),
        "first" | "last" => {
            n(1)?;
            let items = list_arg(name, &args[0])?;
            let item = if name == "first" {
                items.first()
            } else {
                items.last()
            };
            Ok(item.cloned().unwrap_or(Value::Nil))
        }
        "rest" | "initial" => {
            n(1)?;
            let items = list_arg(name, &args[0])?;
            if items.is_empty() {
                return Ok(Value::list(Vec::new()));
            }
            let part = if name == "rest" {
                &items[1..]
            } else {
                &items[..items.len() - 1]
            };
            Ok(Value::list(part.to_vec()))
        }
        "append" | "push" => {
            n(2)?;
            let mut items = list_arg(name, &args[0])?.to_vec();
            items.push(args[1].clone());
            Ok(Value::list(items))
        }
        "prepend" => {
            n(2)?;
            let mut items = vec![args[1].clone()];
            items.extend_from_slice(list_arg(name, &args[0])?);
            Ok(Value::list(items))
        }
        "concat" => {
            let mut items = Vec::new();
            for a in args {
                items.extend_from_slice(list_arg(name, a)?);
            }
            Ok(Value::list(items))
        }
        "has" => {
            n(2)?;
            let needle = args[0].to_json_key();
            Ok(Value::Bool(match &args[1] {
                Value::Nil => false,
                haystack => list_arg(name, haystack)?
                    .iter()
                    .any(|i| i.to_json_key() == needle),
            }))
        }
        "uniq" => {
            n(1)?;
            let mut seen = BTreeSet::new();
            let items = list_arg(name, &args[0])?
                .iter()
                .filter(|i| seen.insert(i.to_json_key()))
                .cloned()
                .collect();
            Ok(Value::list(items))
        }
        "sortAlpha" => {
            n(1)?;
            let mut items = strslice(&args[0]);
            items.sort();
            Ok(Value::list(items.into_iter().map(Value::from).collect()))
        }
        "without" => {
            arity_min(name, args, 1)?;
            let drop: BTreeSet<String> = args[1..].iter().map(Value::to_json_key).collect();
            let items = list_arg(name, &args[0])?
                .iter()
                .filter(|i| !drop.contains(&i.to_json_key()))
                .cloned()
                .collect();
            Ok(Value::list(items))
        }
        "reverse" => {
            n(1)?;
            let mut items = list_arg(name, &args[0])?.to_vec();
            items.reverse();
            Ok(Value::list(items))
        }
        "compact" => {
            n(1)?;
            let items = list_arg(name, &args[0])?
                .iter()
                .filter(|i| !empty(i))
                .cloned()
                .collect();
            Ok(Value::list(items))
        }
        "until" => {
            n(1)?;
            let count = int_arg(&args[0])?;
            check_size("the list", count.unsigned_abs() as u128)?;
            let items: Vec<Value> = if count >= 0 {
                (0..count).map(Value::Int).collect()
            } else {
                (count + 1..=0).rev().map(Value::Int).collect()
            };
            Ok(Value::list(items))
        }
        "untilStep" => {
            n(3)?;
            let (start, stop, step) = (int_arg(&args[0])?, int_arg(&args[1])?, int_arg(&args[2])?);
            let span = (i128::from(stop) - i128::from(start)).unsigned_abs();
            if step != 0 {
                check_size("the list", span / step.unsigned_abs() as u128)?;
            }
            let mut items = Vec::new();
            let mut i = start;
            while (step > 0 && i < stop) || (step < 0 && i > stop) {
                items.push(Value::Int(i));
                // Past i64 the list is over: Go's int would wrap instead.
                let Some(next) = i.checked_add(step) else {
                    break;
                };
                i = next;
            }
            Ok(Value::list(items))
        }
        _ => call_dicts(name, args),
    }
}

impl Value {
    /// A key that identifies a value for `has`, `uniq` and `without` (Go's `reflect.DeepEqual`).
    fn to_json_key(&self) -> String {
        format!("{}:{}", self.type_name(), to_json(self, None, false))
    }
}

fn merge_into(dst: &super::value::Map, src: &super::value::Map, overwrite: bool) {
    let src = src.borrow().clone();
    for (k, v) in src {
        let existing = dst.borrow().get(&k).cloned();
        match (existing, &v) {
            (Some(Value::Map(d)), Value::Map(s)) => merge_into(&d, s, overwrite),
            (None, _) => {
                dst.borrow_mut().insert(k, v);
            }
            (Some(old), _) if (overwrite && !empty(&v)) || empty(&old) => {
                dst.borrow_mut().insert(k, v);
            }
            _ => {}
        }
    }
}

fn call_dicts(name: &str, args: &[Value]) -> FnResult {
    let n = |count| arity(name, args, count);
    match name {
        "dict" => {
            let mut map = BTreeMap::new();
            for pair in args.chunks(2) {
                map.insert(
                    strval(&pair[0]),
                    pair.get(1).cloned().unwrap_or(Value::from("")),
                );
            }
            Ok(Value::map(map))
        }
        "get" => {
            n(2)?;
            let map = map_arg(&args[0])?.borrow();
            Ok(map
                .get(str_arg(&args[1])?)
                .cloned()
                .unwrap_or(Value::from("")))
        }
        "set" => {
            n(3)?;
            map_arg(&args[0])?
                .borrow_mut()
                .insert(str_arg(&args[1])?.to_string(), args[2].clone());
            Ok(args[0].clone())
        }
        "unset" => {
            n(2)?;
            map_arg(&args[0])?.borrow_mut().remove(str_arg(&args[1])?);
            Ok(args[0].clone())
        }
        "hasKey" => {
            n(2)?;
            let map = map_arg(&args[0])?.borrow();
            Ok(Value::Bool(map.contains_key(str_arg(&args[1])?)))
        }
        "keys" | "values" => {
            let mut items = Vec::new();
            for a in args {
                let map = map_arg(a)?.borrow();
                if name == "keys" {
                    items.extend(map.keys().map(|k| Value::from(k.as_str())));
                } else {
                    items.extend(map.values().cloned());
                }
            }
            Ok(Value::list(items))
        }
        "merge" | "mergeOverwrite" => {
            arity_min(name, args, 1)?;
            let dst = map_arg(&args[0])?;
            for src in &args[1..] {
                merge_into(dst, map_arg(src)?, name == "mergeOverwrite");
            }
            Ok(args[0].clone())
        }
        "pick" | "omit" => {
            arity_min(name, args, 1)?;
            let wanted: BTreeSet<&str> = args[1..].iter().map(str_arg).collect::<Result<_, _>>()?;
            let map = map_arg(&args[0])?.borrow();
            Ok(Value::map(
                map.iter()
                    .filter(|(k, _)| wanted.contains(k.as_str()) == (name == "pick"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }
        "pluck" => {
            arity_min(name, args, 1)?;
            let key = str_arg(&args[0])?;
            let mut items = Vec::new();
            for a in &args[1..] {
                if let Some(v) = map_arg(a)?.borrow().get(key) {
                    items.push(v.clone());
                }
            }
            Ok(Value::list(items))
        }
        "dig" => {
            arity_min(name, args, 3)?;
            let (keys, rest) = args.split_at(args.len() - 2);
            let mut cur = args[args.len() - 1].clone();
            for k in keys {
                let next = map_arg(&cur)?.borrow().get(str_arg(k)?).cloned();
                match next {
                    Some(v) => cur = v,
                    None => return Ok(rest[0].clone()),
                }
            }
            Ok(cur)
        }
        "deepCopy" => {
            n(1)?;
            Ok(args[0].deep_copy())
        }
        _ => call_math(name, args),
    }
}

fn call_math(name: &str, args: &[Value]) -> FnResult {
    let n = |count| arity(name, args, count);
    let ints: Vec<i64> = args.iter().map(to_int64).collect();
    match name {
        "add" => Ok(Value::Int(
            ints.iter().fold(0i64, |a, b| a.wrapping_add(*b)),
        )),
        "add1" => {
            n(1)?;
            Ok(Value::Int(ints[0].wrapping_add(1)))
        }
        "sub" => {
            n(2)?;
            Ok(Value::Int(ints[0].wrapping_sub(ints[1])))
        }
        "mul" => {
            arity_min(name, args, 1)?;
            Ok(Value::Int(
                ints.iter().fold(1i64, |a, b| a.wrapping_mul(*b)),
            ))
        }
        "div" | "mod" => {
            n(2)?;
            if ints[1] == 0 {
                return Err("runtime error: integer divide by zero".into());
            }
            Ok(Value::Int(if name == "div" {
                ints[0].wrapping_div(ints[1])
            } else {
                ints[0].wrapping_rem(ints[1])
            }))
        }
        "max" | "min" => {
            arity_min(name, args, 1)?;
            let pick = if name == "max" {
                ints.iter().max()
            } else {
                ints.iter().min()
            };
            Ok(Value::Int(pick.copied().unwrap_or(0)))
        }
        "floor" | "ceil" | "round" => {
            arity_min(name, args, 1)?;
            let f = to_float64(&args[0]);
            Ok(Value::Float(match name {
                "floor" => f.floor(),
                "ceil" => f.ceil(),
                _ => {
                    let places = args.get(1).map_or(0, to_int64) as i32;
                    let scale = 10f64.powi(places);
                    (f * scale).round() / scale
                }
            }))
        }
        _ => call_conversions(name, args),
    }
}

fn call_conversions(name: &str, args: &[Value]) -> FnResult {
    let n = |count| arity(name, args, count);
    match name {
        "toJson" | "toPrettyJson" | "toRawJson" => {
            n(1)?;
            let indent = (name == "toPrettyJson").then_some(2);
            s(to_json(&args[0], indent, name != "toRawJson"))
        }
        "fromJson" => {
            // Sprig's: any JSON value, nil when the text is not JSON; numbers are float64.
            n(1)?;
            Ok(
                serde_json::from_str::<serde_json::Value>(str_arg(&args[0])?)
                    .map_or(Value::Nil, |v| from_json(&v)),
            )
        }
        "toYaml" => {
            n(1)?;
            s(yaml::to_yaml(&args[0]).trim_end_matches('\n'))
        }
        "fromYaml" => {
            // werf's: a dict, or an error.
            n(1)?;
            match yaml::from_yaml(str_arg(&args[0])?)? {
                Value::Nil => Ok(Value::map(BTreeMap::new())),
                v @ Value::Map(_) => Ok(v),
                other => Err(format!(
                    "yaml: unmarshal errors:\n  line 1: cannot unmarshal !!{} into map[string]interface {{}}",
                    if matches!(other, Value::List(_)) {
                        "seq"
                    } else {
                        "str"
                    }
                )),
            }
        }
        "atoi" => {
            n(1)?;
            Ok(Value::Int(str_arg(&args[0])?.parse().unwrap_or(0)))
        }
        "int" | "int64" => {
            n(1)?;
            Ok(Value::Int(to_int64(&args[0])))
        }
        "toDecimal" => {
            n(1)?;
            // Sprig reads the text as octal: `toDecimal "0777"` is 511, a bad digit is 0.
            Ok(Value::Int(
                i64::from_str_radix(&strval(&args[0]), 8).unwrap_or(0),
            ))
        }
        "float64" => {
            n(1)?;
            Ok(Value::Float(to_float64(&args[0])))
        }
        "toStrings" => {
            n(1)?;
            Ok(Value::list(
                strslice(&args[0]).into_iter().map(Value::from).collect(),
            ))
        }
        "kindOf" | "typeOf" => {
            n(1)?;
            s(if name == "kindOf" {
                kind(&args[0])
            } else {
                args[0].type_name()
            })
        }
        "kindIs" => {
            n(2)?;
            Ok(Value::Bool(str_arg(&args[0])? == kind(&args[1])))
        }
        _ => super::extra::call(name, args),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Files | Value::Time(_) | Value::Cert(_) => "struct",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through Sprig's whole dispatch, so `default` and friends are reachable too.
    fn call_s(name: &str, args: &[Value]) -> String {
        match super::super::sprig::call(name, args) {
            Ok(v) => v.to_go_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    fn v(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn defaults_lists_dicts_math() {
        let i = Value::Int;
        let l = |items: Vec<Value>| Value::list(items);
        let d = Value::map(BTreeMap::from([("a".into(), i(1)), ("b".into(), v(""))]));
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("default", vec![v("x"), v("")], "x"),
            ("default", vec![v("x"), i(0)], "x"),
            ("default", vec![v("x"), Value::Bool(false)], "x"),
            ("default", vec![v("x")], "x"),
            ("default", vec![v("x"), v("y")], "y"),
            ("coalesce", vec![Value::Nil, v(""), v("z")], "z"),
            ("ternary", vec![v("a"), v("b"), Value::Bool(false)], "b"),
            ("has", vec![i(2), l(vec![i(1), i(2)])], "true"),
            ("uniq", vec![l(vec![i(1), i(1), v("1")])], "[1 1]"),
            ("without", vec![l(vec![i(1), i(2), i(3)]), i(2)], "[1 3]"),
            ("sortAlpha", vec![l(vec![v("b"), v("a")])], "[a b]"),
            ("first", vec![l(vec![])], "<nil>"),
            ("until", vec![i(3)], "[0 1 2]"),
            ("get", vec![d.clone(), v("zz")], ""),
            ("pick", vec![d.clone(), v("a")], "map[a:1]"),
            ("omit", vec![d.clone(), v("a")], "map[b:]"),
            ("keys", vec![d.clone()], "[a b]"),
            ("dig", vec![v("zz"), v("x"), v("dflt"), d.clone()], "dflt"),
            ("dig", vec![v("a"), v("dflt"), d.clone()], "1"),
            ("add", vec![i(1), v("2"), Value::Float(3.7)], "6"),
            ("div", vec![i(7), i(2)], "3"),
            (
                "div",
                vec![i(7), i(0)],
                "error: runtime error: integer divide by zero",
            ),
            ("max", vec![i(1), i(9), i(3)], "9"),
            ("atoi", vec![v("12x")], "0"),
            ("int", vec![v("0x10")], "16"),
            ("toStrings", vec![l(vec![i(1), v("a")])], "[1 a]"),
            ("fromJson", vec![v("{\"a\": 1}")], "map[a:1]"),
            ("fromJson", vec![v("[1, \"a\"]")], "[1 a]"),
            ("fromJson", vec![v("{oops")], "<nil>"),
            ("fromYaml", vec![v("a: 1\nb: [x]")], "map[a:1 b:[x]]"),
            ("fromYaml", vec![v("")], "map[]"),
            (
                "fromYaml",
                vec![v("- 1")],
                "error: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into map[string]interface {}",
            ),
            ("kindIs", vec![v("map"), d.clone()], "true"),
        ];
        for (name, args, want) in cases {
            assert_eq!(call_s(name, &args), want, "{name} {args:?}");
        }
    }

    #[test]
    fn set_and_merge_change_the_shared_dict() {
        let d = Value::map(BTreeMap::from([("a".into(), Value::Int(1))]));
        call("set", &[d.clone(), v("b"), v("x")]).expect("set works");
        let src = Value::map(BTreeMap::from([
            ("a".into(), Value::Int(9)),
            ("c".into(), Value::Bool(true)),
        ]));
        call("merge", &[d.clone(), src.clone()]).expect("merge works");
        assert_eq!(d.to_go_string(), "map[a:1 b:x c:true]");
        call("mergeOverwrite", &[d.clone(), src]).expect("mergeOverwrite works");
        assert_eq!(d.to_go_string(), "map[a:9 b:x c:true]");
    }
}
