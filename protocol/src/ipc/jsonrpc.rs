//! JSON-RPC 2.0 envelopes and the parse of one line in each direction.
//!
//! Daemon side: [`IncomingRequest::parse`] turns a line into a typed [`Call`]
//! with its id, or an [`IpcError`] with the code JSON-RPC prescribes and the
//! id whenever it could be read. Client side: [`ServerMessage::parse`] tells
//! a response from a notification.
//!
//! Decisions beyond JSON-RPC 2.0 (written down in ipc.md): every request
//! carries an id, an integer or a string (the daemon takes no notifications);
//! batches are refused; `params` is an object or absent; a request object has
//! no members besides `jsonrpc`, `id`, `method` and `params`.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ErrorObject, IpcError, IpcErrorCode};
use super::methods::Call;
use super::unique_members::{Malformed, UniqueValue};
use super::JSONRPC_VERSION;

/// A request id: an integer or a string, echoed in the response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Num(i64),
    Str(String),
}

impl Id {
    fn from_value(value: &Value) -> Option<Id> {
        match value {
            Value::Number(n) => n.as_i64().map(Id::Num),
            Value::String(s) => Some(Id::Str(s.clone())),
            _ => None,
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// The `"jsonrpc": "2.0"` member: always written, and anything else refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct V2;

impl Serialize for V2 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(JSONRPC_VERSION)
    }
}

impl<'de> Deserialize<'de> for V2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = String::deserialize(d)?;
        if v == JSONRPC_VERSION {
            Ok(V2)
        } else {
            Err(de::Error::invalid_value(
                de::Unexpected::Str(&v),
                &"\"2.0\"",
            ))
        }
    }
}

/// A request as a client writes it.
#[derive(Debug, Serialize)]
struct OutgoingRequest<'a, P: ?Sized> {
    jsonrpc: V2,
    id: &'a Id,
    method: &'a str,
    params: &'a P,
}

/// One request line, `\n` included.
pub fn request_line<P: Serialize + ?Sized>(
    id: &Id,
    method: &str,
    params: &P,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(&OutgoingRequest {
        jsonrpc: V2,
        id,
        method,
        params,
    })?;
    line.push(b'\n');
    Ok(line)
}

/// A request the daemon accepted as well-formed: answer it with `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingRequest {
    pub id: Id,
    pub call: Call,
}

impl IncomingRequest {
    /// Parses one line (without its `\n`) as the daemon reads it.
    pub fn parse(line: &[u8]) -> Result<IncomingRequest, IpcError> {
        use IpcErrorCode::InvalidRequest;
        let invalid = |id: Option<Id>, msg: &str| {
            IpcError::new(id, InvalidRequest, format!("invalid request: {msg}"))
        };

        // A member named twice would be read as the last one by us and
        // possibly as the first by whatever checked the line before us.
        let value = UniqueValue::from_slice(line).map_err(|e| match e {
            Malformed::NotJson(e) => IpcError::new(
                None,
                IpcErrorCode::ParseError,
                format!("parse error: the line is not JSON ({e})"),
            ),
            Malformed::Duplicate(why) => invalid(None, &why),
        })?;
        let mut obj = match value {
            Value::Object(obj) => obj,
            Value::Array(_) => {
                return Err(invalid(
                    None,
                    "batch requests are not supported; send one request object per line",
                ))
            }
            _ => return Err(invalid(None, "a request must be a JSON object")),
        };
        let id = match obj.remove("id") {
            None => {
                return Err(invalid(
                    None,
                    "missing `id`: every request needs one (qpqd takes no notifications)",
                ))
            }
            Some(v) => Id::from_value(&v)
                .ok_or_else(|| invalid(None, "`id` must be an integer or a string"))?,
        };
        match obj.remove("jsonrpc") {
            Some(Value::String(v)) if v == JSONRPC_VERSION => {}
            _ => return Err(invalid(Some(id), "`jsonrpc` must be \"2.0\"")),
        }
        let method = match obj.remove("method") {
            Some(Value::String(m)) => m,
            Some(_) => return Err(invalid(Some(id), "`method` must be a string")),
            None => return Err(invalid(Some(id), "missing `method`")),
        };
        let params = obj.remove("params");
        if let Some(key) = obj.keys().next() {
            let msg = format!("unknown member `{key}` (a request has jsonrpc, id, method, params)");
            return Err(invalid(Some(id), &msg));
        }
        match Call::from_parts(&method, params) {
            Ok(call) => Ok(IncomingRequest { id, call }),
            Err(e) => Err(IpcError { id: Some(id), ..e }),
        }
    }
}

/// A response: the result or the error for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// `None` only when answering a request whose id could not be read.
    pub id: Option<Id>,
    pub outcome: Result<Value, ErrorObject>,
}

impl Response {
    pub fn result(id: Id, result: Value) -> Self {
        Self {
            id: Some(id),
            outcome: Ok(result),
        }
    }

    /// A typed result; a value that does not serialize becomes `-32603`.
    pub fn success<T: Serialize>(id: Id, result: &T) -> Self {
        let outcome = serde_json::to_value(result).map_err(|e| {
            ErrorObject::new(
                IpcErrorCode::Internal,
                format!("internal error: cannot encode the result: {e}"),
            )
        });
        Self {
            id: Some(id),
            outcome,
        }
    }

    pub fn error(id: Option<Id>, error: ErrorObject) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }

    /// The response as one line, `\n` included.
    pub fn to_line(&self) -> Vec<u8> {
        // A `Value` always serializes; the fallback only keeps this total.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#
                .to_vec()
        });
        line.push(b'\n');
        line
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("jsonrpc", &V2)?;
        map.serialize_entry("id", &self.id)?;
        match &self.outcome {
            Ok(result) => map.serialize_entry("result", result)?,
            Err(error) => map.serialize_entry("error", error)?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Tells `"result": null` (a result) from a missing `result`.
        fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
            Value::deserialize(d).map(Some)
        }

        #[derive(Deserialize)]
        struct Raw {
            #[allow(dead_code)]
            jsonrpc: V2,
            id: Option<Id>,
            #[serde(default, deserialize_with = "present")]
            result: Option<Value>,
            #[serde(default)]
            error: Option<ErrorObject>,
        }

        let raw = Raw::deserialize(d)?;
        let outcome = match (raw.result, raw.error) {
            (Some(result), None) => Ok(result),
            (None, Some(error)) => Err(error),
            (Some(_), Some(_)) => {
                return Err(de::Error::custom(
                    "a response has `result` or `error`, not both",
                ))
            }
            (None, None) => return Err(de::Error::custom("a response needs `result` or `error`")),
        };
        Ok(Response {
            id: raw.id,
            outcome,
        })
    }
}

/// A notification envelope; [`super::Notification`] is its typed face.
#[derive(Debug, Clone, PartialEq)]
pub struct RawNotification {
    pub method: String,
    pub params: Value,
}

impl RawNotification {
    /// The notification as one line, `\n` included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut map = Map::new();
        map.insert("jsonrpc".into(), Value::String(JSONRPC_VERSION.into()));
        map.insert("method".into(), Value::String(self.method.clone()));
        map.insert("params".into(), self.params.clone());
        let mut line = Value::Object(map).to_string().into_bytes();
        line.push(b'\n');
        line
    }
}

/// A line from the daemon, as the client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Response(Response),
    Notification(RawNotification),
}

/// A line from the daemon that is neither a response nor a notification.
/// `id` is set when the line named one, so the waiting call can be failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed line from qpqd: {reason}")]
pub struct MalformedLine {
    pub id: Option<Id>,
    pub reason: String,
}

impl ServerMessage {
    pub fn parse(line: &[u8]) -> Result<ServerMessage, MalformedLine> {
        let bad = |id: Option<Id>, reason: String| MalformedLine { id, reason };
        let value: Value =
            serde_json::from_slice(line).map_err(|e| bad(None, format!("not JSON: {e}")))?;
        let Value::Object(mut obj) = value else {
            return Err(bad(None, "not a JSON object".into()));
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some(JSONRPC_VERSION) {
            let id = obj.get("id").and_then(Id::from_value);
            return Err(bad(id, "`jsonrpc` is not \"2.0\"".into()));
        }
        if !obj.contains_key("id") {
            let Some(Value::String(method)) = obj.remove("method") else {
                return Err(bad(
                    None,
                    "neither a response (no id) nor a notification".into(),
                ));
            };
            let params = obj.remove("params").unwrap_or(Value::Null);
            return Ok(ServerMessage::Notification(RawNotification {
                method,
                params,
            }));
        }
        let id = obj.get("id").and_then(Id::from_value);
        Response::deserialize(Value::Object(obj))
            .map(ServerMessage::Response)
            .map_err(|e| bad(id, format!("invalid response: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ipc::methods::{HelloParams, NoParams, SendParams};
    use crate::ipc::values::ConversationRef;

    fn parse(line: &str) -> Result<IncomingRequest, IpcError> {
        IncomingRequest::parse(line.as_bytes())
    }

    fn refused(line: &str) -> (Option<Id>, IpcErrorCode, String) {
        let e = parse(line).expect_err(line);
        (e.id, e.code, e.message)
    }

    #[test]
    fn parses_a_request() {
        let req = parse(
            r#"{"jsonrpc":"2.0","id":1,"method":"hello","params":{"client":"qpq-ctl","client_version":"0.1.0","protocol":1}}"#,
        )
        .unwrap();
        assert_eq!(req.id, Id::Num(1));
        assert_eq!(
            req.call,
            Call::Hello(HelloParams {
                client: "qpq-ctl".into(),
                client_version: "0.1.0".into(),
                protocol: 1,
            })
        );
        let req = parse(r#"{"id":"a-1","method":"status","jsonrpc":"2.0"}"#).unwrap();
        assert_eq!(req.id, Id::Str("a-1".into()));
        assert_eq!(req.call, Call::Status(NoParams {}));
        let req = parse(r#"{"jsonrpc":"2.0","id":-5,"method":"status","params":null}"#).unwrap();
        assert_eq!(req.id, Id::Num(-5));
    }

    #[test]
    fn not_json_is_a_parse_error() {
        for line in ["{", "hello", "{\"id\":1,}", "\u{FEFF}{}"] {
            let (id, code, _) = refused(line);
            assert_eq!((id, code), (None, IpcErrorCode::ParseError), "{line}");
        }
        let e = IncomingRequest::parse(b"{\"id\":1,\"x\":\"\xff\"}").unwrap_err();
        assert_eq!(e.code, IpcErrorCode::ParseError);
    }

    #[test]
    fn invalid_requests_without_a_readable_id() {
        for (line, says) in [
            (r#"[{"jsonrpc":"2.0","id":1,"method":"status"}]"#, "batch"),
            ("42", "JSON object"),
            ("\"status\"", "JSON object"),
            (r#"{"jsonrpc":"2.0","method":"status"}"#, "missing `id`"),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"status"}"#,
                "integer or a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"status"}"#,
                "integer or a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"status"}"#,
                "integer or a string",
            ),
        ] {
            let (id, code, msg) = refused(line);
            assert_eq!((id, code), (None, IpcErrorCode::InvalidRequest), "{line}");
            assert!(msg.contains(says), "{line}: {msg}");
        }
    }

    /// `serde_json` keeps the last of two members with one name: a wrapper
    /// that checks the first `method` would pass a `shutdown`.
    #[test]
    fn a_duplicate_member_cannot_smuggle_a_second_method() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"status","method":"shutdown"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"status","method":"shutdown"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"history","params":{"conversation":"a","conversation":"b"}}"#,
        ] {
            let (id, code, msg) = refused(line);
            assert_eq!(code, IpcErrorCode::InvalidRequest, "{line}");
            assert_eq!(id, None, "{line}: the id is ambiguous, so none is echoed");
            assert!(msg.contains("duplicate member"), "{msg}");
        }
    }

    #[test]
    fn invalid_requests_keep_their_id() {
        for (line, says) in [
            (r#"{"id":3,"method":"status"}"#, "jsonrpc"),
            (r#"{"jsonrpc":"1.0","id":3,"method":"status"}"#, "jsonrpc"),
            (r#"{"jsonrpc":2.0,"id":3,"method":"status"}"#, "jsonrpc"),
            (r#"{"jsonrpc":"2.0","id":3}"#, "missing `method`"),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":7}"#,
                "`method` must be a string",
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"status","parms":{}}"#,
                "`parms`",
            ),
        ] {
            let (id, code, msg) = refused(line);
            assert_eq!(
                (id, code),
                (Some(Id::Num(3)), IpcErrorCode::InvalidRequest),
                "{line}"
            );
            assert!(msg.contains(says), "{line}: {msg}");
        }
    }

    #[test]
    fn unknown_method() {
        let (id, code, msg) = refused(r#"{"jsonrpc":"2.0","id":"x","method":"sned","params":{}}"#);
        assert_eq!(id, Some(Id::Str("x".into())));
        assert_eq!(code, IpcErrorCode::MethodNotFound);
        assert!(msg.contains("`sned`"), "{msg}");
    }

    #[test]
    fn params_of_the_wrong_shape_name_the_field() {
        for (params, says) in [
            (json!([1, 2]), "params must be an object"),
            (json!("x"), "params must be an object"),
            (json!({"conversation": "team"}), "missing field `text`"),
            (
                json!({"conversation": "team", "text": "hi", "txt": 1}),
                "`txt`",
            ),
            (json!({"conversation": 5, "text": "hi"}), "conversation"),
            (json!({"conversation": "", "text": "hi"}), "conversation"),
            (json!({"conversation": "@", "text": "hi"}), "conversation"),
            (json!({"conversation": "team", "text": ["hi"]}), "text"),
            (
                json!({"conversation": "team", "text": "hi", "confirm_changed_keys": "yes"}),
                "confirm_changed_keys",
            ),
        ] {
            let line = json!({"jsonrpc":"2.0","id":9,"method":"send","params":params}).to_string();
            let (id, code, msg) = refused(&line);
            assert_eq!(
                (id, code),
                (Some(Id::Num(9)), IpcErrorCode::InvalidParams),
                "{line}"
            );
            assert!(msg.contains(says), "{line}: {msg}");
            assert!(msg.contains("`send`"), "{msg}");
        }
        // Methods without params take none.
        let (_, code, msg) =
            refused(r#"{"jsonrpc":"2.0","id":1,"method":"status","params":{"verbose":true}}"#);
        assert_eq!(code, IpcErrorCode::InvalidParams);
        assert!(msg.contains("`verbose`"), "{msg}");
        // Nested fields are named by their path.
        let (_, code, msg) = refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"group.add","params":{"conversation":"t","members":["a",2]}}"#,
        );
        assert_eq!(code, IpcErrorCode::InvalidParams);
        assert!(msg.contains("members[1]"), "{msg}");
        // Out-of-range values are refused, not clamped.
        let (_, code, msg) = refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"history","params":{"conversation":"t","limit":501}}"#,
        );
        assert_eq!(code, IpcErrorCode::InvalidParams);
        assert!(msg.contains("limit"), "{msg}");
    }

    #[test]
    fn request_line_is_what_the_daemon_parses() {
        let params = SendParams {
            conversation: ConversationRef::parse("@bob").unwrap(),
            text: "hi\nthere".into(),
            confirm_changed_keys: false,
            reply_to: None,
        };
        let line = request_line(&Id::Num(12), "send", &params).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let req = IncomingRequest::parse(&line[..line.len() - 1]).unwrap();
        assert_eq!(req.id, Id::Num(12));
        assert_eq!(req.call, Call::Send(params));
    }

    #[test]
    fn responses_round_trip() {
        for response in [
            Response::result(Id::Num(1), json!({"seq": 4})),
            Response::result(Id::Str("s".into()), Value::Null),
            Response::result(Id::Num(2), json!([])),
            Response::error(
                Some(Id::Num(3)),
                ErrorObject::new(IpcErrorCode::NotLoggedIn, "log in first"),
            ),
            Response::error(None, ErrorObject::new(IpcErrorCode::ParseError, "nope")),
        ] {
            let line = response.to_line();
            let back = ServerMessage::parse(&line[..line.len() - 1]).unwrap();
            assert_eq!(back, ServerMessage::Response(response));
        }
    }

    #[test]
    fn notifications_round_trip() {
        let n = RawNotification {
            method: "connection".into(),
            params: json!({"seq": 1, "state": "online", "detail": ""}),
        };
        let line = n.to_line();
        assert_eq!(
            ServerMessage::parse(&line[..line.len() - 1]).unwrap(),
            ServerMessage::Notification(n)
        );
    }

    #[test]
    fn malformed_server_lines() {
        for (line, id) in [
            ("garbage", None),
            ("[]", None),
            (r#"{"jsonrpc":"2.0"}"#, None),
            (r#"{"jsonrpc":"2.0","id":4}"#, Some(Id::Num(4))),
            (
                r#"{"jsonrpc":"2.0","id":4,"result":1,"error":{"code":1,"message":""}}"#,
                Some(Id::Num(4)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"error":{"code":"x"}}"#,
                Some(Id::Num(5)),
            ),
            (r#"{"jsonrpc":"1.0","id":6,"result":{}}"#, Some(Id::Num(6))),
        ] {
            let e = ServerMessage::parse(line.as_bytes()).expect_err(line);
            assert_eq!(e.id, id, "{line}: {e}");
        }
    }
}
