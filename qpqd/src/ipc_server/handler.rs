//! The agent behind the IPC method table: one function per method, from its
//! typed params to the agent call that does it. `Call::dispatch` picks the
//! function; the connection loop in `ipc_server` only writes the answer.
//!
//! One handler serves one connection, because `subscribe` leaves a stream
//! behind that only the connection can start (after its answer is written).

use std::sync::{Arc, Mutex, PoisonError};

use quicproquo_protocol::ipc::error::ErrorObject;
use quicproquo_protocol::ipc::methods::{
    AccountDeleteParams, AccountParams, AutoAcceptParams, AutoAcceptResult, ConversationParams,
    DeclineParams, DiagnoseResult, DmOpenParams, Empty, GroupCreateParams, GroupMembersParams,
    Handler, HelloParams, HelloResult, HistoryParams, IntegrityAckResult, InvitationParams,
    MessageParams, NoParams, PasswordChangeParams, ReadParams, ReadResult, RekeyResult,
    SearchParams, SendParams, StatusResult, SubscribeParams, SubscribeResult, UnlockParams,
    VerifyParams, VerifyResult, WhoamiResult,
};
use quicproquo_protocol::ipc::methods::{AttachParams, DownloadParams};
use quicproquo_protocol::ipc::methods::{
    ConversationSettingsParams, DeleteParams, EditParams, FocusParams, MentionsParams,
    MessageRefParams, ReactParams, SettingsParams, TypingParams,
};
use quicproquo_protocol::ipc::values::{
    Account, Attachment, Conversation, ConversationSettings, Invitation, Member, Message,
    MessageVersion, Settings,
};
use quicproquo_protocol::ipc::IPC_PROTOCOL_VERSION;
use zeroize::Zeroizing;

use super::subscription::Subscription;
use crate::agent::Agent;
use crate::notifier::FocusSlot;

/// An agent failure becomes its IPC error object through `super::error`.
type Answer<T> = Result<T, ErrorObject>;

/// The IPC methods of one connection, done by the agent.
pub(super) struct AgentHandler {
    agent: Arc<Agent>,
    /// What the last `subscribe` opened, until the connection starts it.
    opened: Mutex<Option<Subscription>>,
    /// The conversation this connection shows (`focus`), until it closes.
    focus: FocusSlot,
}

impl AgentHandler {
    pub(super) fn new(agent: Arc<Agent>) -> Self {
        AgentHandler {
            focus: agent.focus().slot(),
            agent,
            opened: Mutex::new(None),
        }
    }

    /// The subscription a `subscribe` just answered opened, to stream once
    /// the answer is on its way (so the answer comes first).
    pub(super) fn take_subscription(&self) -> Option<Subscription> {
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Handler for AgentHandler {
    async fn hello(&self, p: HelloParams) -> Answer<HelloResult> {
        p.check_version()?;
        Ok(HelloResult {
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            protocol: IPC_PROTOCOL_VERSION,
            profile: self.agent.profile.clone(),
        })
    }

    async fn status(&self, _: NoParams) -> Answer<StatusResult> {
        Ok(self.agent.status().await?)
    }

    async fn unlock(&self, p: UnlockParams) -> Answer<Empty> {
        let passphrase = Zeroizing::new(p.passphrase.expose().to_owned());
        self.agent.unlock(passphrase).await?;
        Ok(Empty {})
    }

    async fn integrity_acknowledge(&self, _: NoParams) -> Answer<IntegrityAckResult> {
        Ok(self.agent.integrity_acknowledge().await?)
    }

    async fn register(&self, p: AccountParams) -> Answer<Account> {
        Ok(self.agent.register(p).await?)
    }

    async fn login(&self, p: AccountParams) -> Answer<Account> {
        Ok(self.agent.login(p).await?)
    }

    async fn logout(&self, _: NoParams) -> Answer<Empty> {
        self.agent.logout().await?;
        Ok(Empty {})
    }

    async fn account_password(&self, p: PasswordChangeParams) -> Answer<Empty> {
        let current = Zeroizing::new(p.current_password.expose().to_owned());
        let new = Zeroizing::new(p.new_password.expose().to_owned());
        self.agent.change_password(current, new).await?;
        Ok(Empty {})
    }

    async fn account_delete(&self, p: AccountDeleteParams) -> Answer<Empty> {
        let password = Zeroizing::new(p.password.expose().to_owned());
        self.agent.delete_account(password).await?;
        Ok(Empty {})
    }

    async fn diagnose(&self, _: NoParams) -> Answer<DiagnoseResult> {
        Ok(self.agent.diagnose().await?)
    }

    async fn whoami(&self, _: NoParams) -> Answer<WhoamiResult> {
        Ok(self.agent.whoami().await?)
    }

    async fn conversations(&self, _: NoParams) -> Answer<Vec<Conversation>> {
        Ok(self.agent.conversations().await?)
    }

    async fn dm_open(&self, p: DmOpenParams) -> Answer<Conversation> {
        Ok(self.agent.dm_open(&p.username).await?)
    }

    async fn group_create(&self, p: GroupCreateParams) -> Answer<Conversation> {
        Ok(self.agent.group_create(p).await?)
    }

    async fn group_add(&self, p: GroupMembersParams) -> Answer<Conversation> {
        Ok(self.agent.group_add(&p.conversation, &p.members).await?)
    }

    async fn group_remove(&self, p: GroupMembersParams) -> Answer<Conversation> {
        Ok(self.agent.group_remove(&p.conversation, &p.members).await?)
    }

    async fn group_leave(&self, p: ConversationParams) -> Answer<Empty> {
        self.agent.group_leave(&p.conversation).await?;
        Ok(Empty {})
    }

    async fn group_rekey(&self, p: ConversationParams) -> Answer<RekeyResult> {
        let epoch = self.agent.group_rekey(&p.conversation).await?;
        Ok(RekeyResult { epoch })
    }

    async fn members(&self, p: ConversationParams) -> Answer<Vec<Member>> {
        Ok(self.agent.members(&p.conversation).await?)
    }

    async fn send(&self, p: SendParams) -> Answer<Message> {
        Ok(self
            .agent
            .send_reply(&p.conversation, &p.text, p.confirm_changed_keys, p.reply_to)
            .await?)
    }

    // Issue 18, attachments.

    async fn attach(&self, p: AttachParams) -> Answer<Message> {
        Ok(self.agent.attach(p).await?)
    }

    async fn download(&self, p: DownloadParams) -> Answer<Attachment> {
        Ok(self.agent.download(p).await?)
    }

    // Issue 17, actions: react, edit, delete, message.edits, mentions.

    async fn react(&self, p: ReactParams) -> Answer<Message> {
        Ok(self
            .agent
            .react(&p.conversation, p.id, &p.emoji, p.remove)
            .await?)
    }

    async fn edit(&self, p: EditParams) -> Answer<Message> {
        Ok(self.agent.edit(&p.conversation, p.id, &p.text).await?)
    }

    async fn delete(&self, p: DeleteParams) -> Answer<Empty> {
        self.agent.delete(&p.conversation, p.id, p.for_me).await?;
        Ok(Empty {})
    }

    async fn message_edits(&self, p: MessageRefParams) -> Answer<Vec<MessageVersion>> {
        Ok(self.agent.message_edits(&p.conversation, p.id).await?)
    }

    async fn mentions(&self, p: MentionsParams) -> Answer<Vec<Message>> {
        let limit = p.limit.get() as u32;
        Ok(self
            .agent
            .mentions(p.conversation.as_ref(), p.before, limit)
            .await?)
    }

    async fn message_retry(&self, p: MessageParams) -> Answer<Message> {
        Ok(self.agent.retry_message(p.id).await?)
    }

    async fn message_discard(&self, p: MessageParams) -> Answer<Empty> {
        self.agent.discard_message(p.id).await?;
        Ok(Empty {})
    }

    async fn history(&self, p: HistoryParams) -> Answer<Vec<Message>> {
        let limit = p.limit.get() as u32;
        Ok(self.agent.history(&p.conversation, p.before, limit).await?)
    }

    async fn search(&self, p: SearchParams) -> Answer<Vec<Message>> {
        let limit = p.limit.get() as u32;
        Ok(self
            .agent
            .search(&p.query, p.conversation.as_ref(), limit, p.offset)
            .await?)
    }

    async fn read(&self, p: ReadParams) -> Answer<ReadResult> {
        let unread = self.agent.read(&p.conversation, p.up_to).await?;
        Ok(ReadResult { unread })
    }

    async fn invites(&self, _: NoParams) -> Answer<Vec<Invitation>> {
        Ok(self.agent.invites().await?)
    }

    async fn accept(&self, p: InvitationParams) -> Answer<Conversation> {
        Ok(self.agent.accept(p.id).await?)
    }

    async fn decline(&self, p: DeclineParams) -> Answer<Empty> {
        self.agent.decline(p.id, p.reason).await?;
        Ok(Empty {})
    }

    async fn auto_accept(&self, p: AutoAcceptParams) -> Answer<AutoAcceptResult> {
        Ok(AutoAcceptResult {
            mode: self.agent.auto_accept(p.mode).await?,
        })
    }

    async fn verify(&self, p: VerifyParams) -> Answer<VerifyResult> {
        Ok(self
            .agent
            .verify(
                &p.username,
                p.confirm,
                p.safety_number.as_deref(),
                p.conversation.as_ref(),
            )
            .await?)
    }

    // Issue 17, privacy: typing, conversation.settings, settings.

    async fn typing(&self, p: TypingParams) -> Answer<Empty> {
        self.agent.typing(&p.conversation, p.on).await?;
        Ok(Empty {})
    }

    async fn conversation_settings(
        &self,
        p: ConversationSettingsParams,
    ) -> Answer<ConversationSettings> {
        Ok(self.agent.conversation_settings(p).await?)
    }

    async fn settings(&self, p: SettingsParams) -> Answer<Settings> {
        Ok(self.agent.settings(p).await?)
    }

    // Issue 17, notifications: focus.

    async fn focus(&self, p: FocusParams) -> Answer<Empty> {
        let shown = match &p.conversation {
            Some(r) => Some(self.agent.focus_target(r).await?),
            None => None,
        };
        self.focus.set(shown);
        Ok(Empty {})
    }

    async fn subscribe(&self, p: SubscribeParams) -> Answer<SubscribeResult> {
        let (latest, live) = self.agent.subscribe().await?;
        let opened = Subscription::new(self.agent.clone(), p.since, latest, live);
        *self.opened.lock().unwrap_or_else(PoisonError::into_inner) = Some(opened);
        Ok(SubscribeResult { seq: latest })
    }

    async fn shutdown(&self, _: NoParams) -> Answer<Empty> {
        self.agent.request_shutdown();
        Ok(Empty {})
    }
}
