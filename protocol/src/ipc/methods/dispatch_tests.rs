//! [`Call::dispatch`] reaches the handler function of the call's method with
//! the call's typed params, and answers with that function's typed result as
//! JSON or its error as is.

use std::future::{ready, Future, Ready};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use serde_json::json;

use super::tests::sample_calls;
use super::*;
use crate::ipc::jsonrpc::IncomingRequest;

/// A handler that writes down every call it gets, rebuilt as the [`Call`] of
/// the function that was called, and answers a few with a value and the rest
/// with an error naming the method.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
}

type Answer<R> = Ready<Result<R, ErrorObject>>;

impl Recorder {
    fn answer<R>(&self, call: Call, result: R) -> Answer<R> {
        self.calls.lock().expect("not poisoned").push(call);
        ready(Ok(result))
    }

    fn refuse<R>(&self, call: Call) -> Answer<R> {
        let e = ErrorObject::new(IpcErrorCode::NotFound, call.method());
        self.calls.lock().expect("not poisoned").push(call);
        ready(Err(e))
    }

    fn recorded(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("not poisoned"))
    }
}

// Naming the ready futures refines the trait's `impl Future`; that is the point.
#[allow(refining_impl_trait)]
impl Handler for Recorder {
    fn hello(&self, p: HelloParams) -> Answer<HelloResult> {
        let r = HelloResult {
            daemon_version: "9".into(),
            protocol: p.protocol,
            profile: p.client.clone(),
        };
        self.answer(Call::Hello(p), r)
    }
    fn status(&self, p: NoParams) -> Answer<StatusResult> {
        self.refuse(Call::Status(p))
    }
    fn unlock(&self, p: UnlockParams) -> Answer<Empty> {
        self.answer(Call::Unlock(p), Empty {})
    }
    fn integrity_acknowledge(&self, p: NoParams) -> Answer<IntegrityAckResult> {
        self.refuse(Call::IntegrityAcknowledge(p))
    }
    fn register(&self, p: AccountParams) -> Answer<Account> {
        self.refuse(Call::Register(p))
    }
    fn login(&self, p: AccountParams) -> Answer<Account> {
        self.refuse(Call::Login(p))
    }
    fn logout(&self, p: NoParams) -> Answer<Empty> {
        self.refuse(Call::Logout(p))
    }
    fn account_password(&self, p: PasswordChangeParams) -> Answer<Empty> {
        self.refuse(Call::AccountPassword(p))
    }
    fn account_delete(&self, p: AccountDeleteParams) -> Answer<Empty> {
        self.refuse(Call::AccountDelete(p))
    }
    fn diagnose(&self, p: NoParams) -> Answer<DiagnoseResult> {
        self.refuse(Call::Diagnose(p))
    }
    fn whoami(&self, p: NoParams) -> Answer<WhoamiResult> {
        self.refuse(Call::Whoami(p))
    }
    fn conversations(&self, p: NoParams) -> Answer<Vec<Conversation>> {
        self.answer(Call::Conversations(p), Vec::new())
    }
    fn dm_open(&self, p: DmOpenParams) -> Answer<Conversation> {
        self.refuse(Call::DmOpen(p))
    }
    fn group_create(&self, p: GroupCreateParams) -> Answer<Conversation> {
        self.refuse(Call::GroupCreate(p))
    }
    fn group_add(&self, p: GroupMembersParams) -> Answer<Conversation> {
        self.refuse(Call::GroupAdd(p))
    }
    fn group_remove(&self, p: GroupMembersParams) -> Answer<Conversation> {
        self.refuse(Call::GroupRemove(p))
    }
    fn group_leave(&self, p: ConversationParams) -> Answer<Empty> {
        self.refuse(Call::GroupLeave(p))
    }
    fn group_rekey(&self, p: ConversationParams) -> Answer<RekeyResult> {
        self.answer(Call::GroupRekey(p), RekeyResult { epoch: 3 })
    }
    fn members(&self, p: ConversationParams) -> Answer<Vec<Member>> {
        self.refuse(Call::Members(p))
    }
    fn send(&self, p: SendParams) -> Answer<Message> {
        self.refuse(Call::Send(p))
    }
    fn attach(&self, p: AttachParams) -> Answer<Message> {
        self.refuse(Call::Attach(p))
    }
    fn download(&self, p: DownloadParams) -> Answer<Attachment> {
        self.refuse(Call::Download(p))
    }
    fn history(&self, p: HistoryParams) -> Answer<Vec<Message>> {
        self.refuse(Call::History(p))
    }
    fn search(&self, p: SearchParams) -> Answer<Vec<Message>> {
        self.refuse(Call::Search(p))
    }
    fn read(&self, p: ReadParams) -> Answer<ReadResult> {
        self.answer(Call::Read(p), ReadResult { unread: 7 })
    }
    fn react(&self, p: ReactParams) -> Answer<Message> {
        self.refuse(Call::React(p))
    }
    fn edit(&self, p: EditParams) -> Answer<Message> {
        self.refuse(Call::Edit(p))
    }
    fn delete(&self, p: DeleteParams) -> Answer<Empty> {
        self.answer(Call::Delete(p), Empty {})
    }
    fn message_edits(&self, p: MessageRefParams) -> Answer<Vec<MessageVersion>> {
        self.answer(Call::MessageEdits(p), Vec::new())
    }
    fn mentions(&self, p: MentionsParams) -> Answer<Vec<Message>> {
        self.refuse(Call::Mentions(p))
    }
    fn typing(&self, p: TypingParams) -> Answer<Empty> {
        self.answer(Call::Typing(p), Empty {})
    }
    fn conversation_settings(&self, p: ConversationSettingsParams) -> Answer<ConversationSettings> {
        self.refuse(Call::ConversationSettingsMethod(p))
    }
    fn settings(&self, p: SettingsParams) -> Answer<Settings> {
        self.refuse(Call::SettingsMethod(p))
    }
    fn focus(&self, p: FocusParams) -> Answer<Empty> {
        self.answer(Call::Focus(p), Empty {})
    }
    fn message_retry(&self, p: MessageParams) -> Answer<Message> {
        self.refuse(Call::MessageRetry(p))
    }
    fn message_discard(&self, p: MessageParams) -> Answer<Empty> {
        self.answer(Call::MessageDiscard(p), Empty {})
    }
    fn verify(&self, p: VerifyParams) -> Answer<VerifyResult> {
        self.refuse(Call::Verify(p))
    }
    fn invites(&self, p: NoParams) -> Answer<Vec<Invitation>> {
        self.answer(Call::Invites(p), Vec::new())
    }
    fn accept(&self, p: InvitationParams) -> Answer<Conversation> {
        self.refuse(Call::Accept(p))
    }
    fn decline(&self, p: DeclineParams) -> Answer<Empty> {
        self.refuse(Call::Decline(p))
    }
    fn auto_accept(&self, p: AutoAcceptParams) -> Answer<AutoAcceptResult> {
        let mode = p.mode.unwrap_or(AutoAccept::Contacts);
        self.answer(Call::AutoAcceptSetting(p), AutoAcceptResult { mode })
    }
    fn subscribe(&self, p: SubscribeParams) -> Answer<SubscribeResult> {
        let seq = p.since.unwrap_or(Seq(0));
        self.answer(Call::Subscribe(p), SubscribeResult { seq })
    }
    fn shutdown(&self, p: NoParams) -> Answer<Empty> {
        self.answer(Call::Shutdown(p), Empty {})
    }
}

/// Runs a future that never waits (the recorder's answers are ready).
fn now<F: Future>(f: F) -> F::Output {
    match std::pin::pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the recorder never waits"),
    }
}

#[test]
fn every_call_reaches_its_own_handler_function_with_its_params() {
    let recorder = Recorder::default();
    for call in sample_calls() {
        let answer = now(call.clone().dispatch(&recorder));
        assert_eq!(recorder.recorded(), vec![call.clone()], "{}", call.method());
        if let Err(e) = answer {
            assert_eq!(e.code, IpcErrorCode::NotFound.as_i32());
            assert_eq!(e.message, call.method(), "the error passes through as is");
        }
    }
}

#[test]
fn dispatch_answers_the_typed_result_as_json() {
    let recorder = Recorder::default();
    let dispatch = |method, params| {
        let call = Call::from_parts(method, Some(params)).expect("valid params");
        now(call.dispatch(&recorder)).expect("answered")
    };
    assert_eq!(
        dispatch("read", json!({"conversation": "team"})),
        json!({"unread": 7})
    );
    assert_eq!(
        dispatch("group.rekey", json!({"conversation": "team"})),
        json!({"epoch": 3})
    );
    assert_eq!(dispatch("shutdown", json!({})), json!({}));
    assert_eq!(dispatch("conversations", json!(null)), json!([]));
    assert_eq!(
        dispatch("subscribe", json!({"since": 41})),
        json!({"seq": 41})
    );
    assert_eq!(
        dispatch(
            "hello",
            json!({"client": "qpq-ctl", "client_version": "1", "protocol": 1})
        ),
        json!({"daemon_version": "9", "protocol": 1, "profile": "qpq-ctl"})
    );
}

#[test]
fn dispatch_is_send_for_a_sync_handler() {
    fn send<T: Send>(_: &T) {}
    let recorder = Recorder::default();
    send(&Call::Shutdown(NoParams {}).dispatch(&recorder));
}

/// Unknown methods and bad params never reach a handler: the line's parse
/// answers them, with the messages front-ends have always seen.
#[test]
fn unknown_methods_and_bad_params_are_refused_before_dispatch() {
    let parse = |line: &str| IncomingRequest::parse(line.as_bytes()).unwrap_err();
    let e = parse(r#"{"jsonrpc":"2.0","id":1,"method":"sned","params":{}}"#);
    assert_eq!(e.code, IpcErrorCode::MethodNotFound);
    assert_eq!(e.message, "method not found: `sned`");
    let e = parse(r#"{"jsonrpc":"2.0","id":2,"method":"send","params":{"conversation":"team"}}"#);
    assert_eq!(e.code, IpcErrorCode::InvalidParams);
    assert!(
        e.message.starts_with("invalid params for `send`: ") && e.message.contains("text"),
        "{}",
        e.message
    );
    let e = parse(
        r#"{"jsonrpc":"2.0","id":3,"method":"read","params":{"conversation":"team","upto":1}}"#,
    );
    assert_eq!(e.code, IpcErrorCode::InvalidParams);
    assert!(e.message.contains("upto"), "{}", e.message);
}
