//! Inbound message decisions, without I/O: envelope checks, replies that need no state
//! (heartbeat, listMachInfo, NACKs), and which messages go to the running-order state.

use crate::mos::messages::{
    Heartbeat, ListMachInfo, MosAck, ProfileSupport, RoAck, SupportedProfiles,
};
use crate::mos::time::MosTime;
use crate::mos::{Envelope, Message, Mos, Parsed};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The port a connection was accepted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortRole {
    /// 10540.
    Lower,
    /// 10541.
    Upper,
    /// 10542.
    Query,
}

impl PortRole {
    /// lower / upper / query.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lower => "lower",
            Self::Upper => "upper",
            Self::Query => "query",
        }
    }

    /// The role named by [`PortRole::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Lower, Self::Upper, Self::Query]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// How listMachInfo states the supported profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProfileStyle {
    /// The 2.8.1 flat `mosProfileN` elements.
    #[default]
    Flat,
    /// The 2.8.4 `supportedProfiles` container.
    Container,
}

/// What the session layer needs to know about the gateway and its peers.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Our mosID.
    pub mos_id: String,
    /// ncsIDs allowed to talk to us.
    pub known_ncs: Vec<String>,
    /// Accept any ncsID (labs).
    pub accept_any_ncs: bool,
    /// Profiles stated in listMachInfo (0..=7).
    pub profiles: [bool; 8],
    /// listMachInfo style per ncsID; default flat.
    pub profile_style: Vec<(String, ProfileStyle)>,
    /// When the gateway started (listMachInfo opTime).
    pub started: MosTime,
    /// Set once an NMOS bridge takes roCtrl: Profile 5 is then stated in listMachInfo.
    pub control: Arc<AtomicBool>,
}

impl SessionPolicy {
    /// A policy for `mos_id` accepting `known_ncs`.
    pub fn new(mos_id: &str, known_ncs: Vec<String>) -> Self {
        Self {
            mos_id: mos_id.to_string(),
            known_ncs,
            accept_any_ncs: false,
            profiles: [true, true, true, true, true, false, false, false],
            profile_style: Vec::new(),
            started: MosTime::now(),
            control: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What to do with an inbound message.
#[derive(Debug)]
pub enum Decision {
    /// Send this reply on the same socket.
    Reply(Box<Mos>),
    /// Hand the message to the running-order state; it produces the reply.
    Apply,
    /// Answer roReq from the running-order state.
    RunningOrderRequest,
    /// Answer from the object catalogue (mosReqObj, mosReqAll, mosObjCreate, searches).
    Objects,
    /// roCtrl (Profile 5): hand it to the NMOS bridge, which answers at once.
    Control,
    /// No reply (replies arriving on an inbound socket, keepAlive).
    Ignore(&'static str),
}

/// A reply to `request` carrying the same envelope pair and messageID.
pub fn reply_to(request: &Envelope, message: Message) -> Mos {
    Mos {
        mos_id: request.mos_id.clone(),
        ncs_id: request.ncs_id.clone(),
        message_id: request.message_id.clone(),
        message,
    }
}

/// A NACK in the family of the port (roAck on the upper port or for ro* messages,
/// mosAck otherwise), with `reason` clipped to 128 characters.
pub fn nack(port: PortRole, request: &Envelope, ro_id: &str, reason: &str) -> Mos {
    let ro_family = port == PortRole::Upper
        || request
            .message_name
            .as_deref()
            .is_some_and(|n| n.starts_with("ro"));
    let message = if ro_family {
        Message::RoAck(RoAck::error(ro_id, reason))
    } else {
        Message::MosAck(MosAck::nack("", reason))
    };
    reply_to(request, message)
}

/// The roID a message is about, when it has one (for NACKs).
pub fn ro_id_of(message: &Message) -> &str {
    use Message::*;
    match message {
        RoCreate(m) => &m.0.header.id,
        RoReplace(m) => &m.0.header.id,
        RoList(m) => &m.0.header.id,
        RoMetadataReplace(m) => &m.header.id,
        RoDelete(m) => &m.ro_id,
        RoReq(m) => &m.ro_id,
        RoReadyToAir(m) => &m.ro_id,
        RoStoryAppend(m) => &m.ro_id,
        RoStoryInsert(m) => &m.ro_id,
        RoStoryReplace(m) => &m.ro_id,
        RoStoryMove(m) => &m.ro_id,
        RoStorySwap(m) => &m.ro_id,
        RoStoryDelete(m) => &m.ro_id,
        RoStoryMoveMultiple(m) => &m.ro_id,
        RoItemInsert(m) => &m.ro_id,
        RoItemReplace(m) => &m.ro_id,
        RoItemMoveMultiple(m) => &m.ro_id,
        RoItemDelete(m) => &m.ro_id,
        RoElementAction(m) => &m.ro_id,
        RoStorySend(m) => &m.ro_id,
        RoCtrl(m) => &m.ro_id,
        RoItemCue(m) => &m.ro_id,
        RoStat(m) => &m.ro_id,
        RoItemStat(m) => &m.ro_id,
        RoElementStat(m) => &m.ro_id,
        _ => "",
    }
}

/// The messages [`SessionPolicy::decide`] applies to the running orders (on the upper
/// port), by name.
pub const RUNNING_ORDER_EDITS: [&str; 19] = [
    "roCreate",
    "roReplace",
    "roMetadataReplace",
    "roDelete",
    "roReadyToAir",
    "roStoryAppend",
    "roStoryInsert",
    "roStoryReplace",
    "roStoryMove",
    "roStorySwap",
    "roStoryDelete",
    "roStoryMoveMultiple",
    "roItemInsert",
    "roItemReplace",
    "roItemMoveMultiple",
    "roItemDelete",
    "roElementAction",
    "roStorySend",
    "roList",
];

impl SessionPolicy {
    /// Checks the envelope: our mosID, a known ncsID. Returns the NACK to send otherwise.
    pub fn check_envelope(&self, port: PortRole, mos: &Mos) -> Result<(), Box<Mos>> {
        self.check_envelope_fields(port, &mos.envelope(), ro_id_of(&mos.message))
    }

    /// [`SessionPolicy::check_envelope`] on the envelope alone (a message whose content
    /// could not be read: its envelope's faults are the first reason to refuse it).
    pub fn check_envelope_fields(
        &self,
        port: PortRole,
        env: &crate::mos::Envelope,
        ro_id: &str,
    ) -> Result<(), Box<Mos>> {
        if env.mos_id != self.mos_id {
            let reason = format!(
                "Wrong mosID {:?}: this device is {}",
                env.mos_id, self.mos_id
            );
            return Err(Box::new(nack(port, env, ro_id, &reason)));
        }
        if !self.accept_any_ncs && !self.known_ncs.contains(&env.ncs_id) {
            let reason = format!(
                "Unknown ncsID {:?}: not configured on this device",
                env.ncs_id
            );
            return Err(Box::new(nack(port, env, ro_id, &reason)));
        }
        Ok(())
    }

    /// Decides what to do with a parsed inbound message.
    pub fn decide(&self, port: PortRole, parsed: &Parsed) -> Decision {
        let mos = &parsed.mos;
        if let Err(nack) = self.check_envelope(port, mos) {
            return Decision::Reply(nack);
        }
        let env = mos.envelope();
        match &mos.message {
            Message::Heartbeat(_) => Decision::Reply(Box::new(reply_to(
                &env,
                Message::Heartbeat(Heartbeat {
                    time: Some(MosTime::now()),
                }),
            ))),
            Message::ReqMachInfo(_) => Decision::Reply(Box::new(reply_to(
                &env,
                Message::ListMachInfo(self.machine_info(&mos.ncs_id)),
            ))),
            // Replies have no reply of their own.
            Message::MosAck(_)
            | Message::RoAck(_)
            | Message::ListMachInfo(_)
            | Message::MosListSearchableSchema(_)
            | Message::MosObjList(_) => Decision::Ignore("a reply arriving on an inbound socket"),
            Message::Unknown { name } if name == "keepAlive" => {
                Decision::Ignore("keepAlive is a MOS 3/4 message")
            }
            Message::Unknown { name } => Decision::Reply(Box::new(nack(
                port,
                &env,
                "",
                &format!("Unsupported message: {name}"),
            ))),
            Message::RoReq(_) => Decision::RunningOrderRequest,
            Message::RoCreate(_)
            | Message::RoReplace(_)
            | Message::RoMetadataReplace(_)
            | Message::RoDelete(_)
            | Message::RoReadyToAir(_)
            | Message::RoStoryAppend(_)
            | Message::RoStoryInsert(_)
            | Message::RoStoryReplace(_)
            | Message::RoStoryMove(_)
            | Message::RoStorySwap(_)
            | Message::RoStoryDelete(_)
            | Message::RoStoryMoveMultiple(_)
            | Message::RoItemInsert(_)
            | Message::RoItemReplace(_)
            | Message::RoItemMoveMultiple(_)
            | Message::RoItemDelete(_)
            | Message::RoElementAction(_)
            | Message::RoStorySend(_)
            | Message::RoList(_) => {
                if port == PortRole::Upper {
                    Decision::Apply
                } else {
                    Decision::Reply(Box::new(nack(
                        port,
                        &env,
                        ro_id_of(&mos.message),
                        &format!("{} belongs on the upper port", mos.message.name()),
                    )))
                }
            }
            Message::MosReqObj(_)
            | Message::MosReqAll(_)
            | Message::MosObjCreate(_)
            | Message::MosReqSearchableSchema(_)
            | Message::MosReqObjList(_) => Decision::Objects,
            Message::RoCtrl(_) if port == PortRole::Upper => Decision::Control,
            Message::RoCtrl(m) => Decision::Reply(Box::new(nack(
                port,
                &env,
                &m.ro_id,
                "roCtrl belongs on the upper port",
            ))),
            Message::MosReqObjAction(_) => Decision::Reply(Box::new(nack(
                port,
                &env,
                "",
                "mosReqObjAction is not supported in MOS 2.8.1",
            ))),
            other => Decision::Reply(Box::new(nack(
                port,
                &env,
                ro_id_of(other),
                &format!("Unsupported message: {}", other.name()),
            ))),
        }
    }

    /// Our listMachInfo for a given NCS.
    pub fn machine_info(&self, ncs_id: &str) -> ListMachInfo {
        let style = self
            .profile_style
            .iter()
            .find(|(n, _)| n == ncs_id)
            .map(|(_, s)| *s)
            .unwrap_or_default();
        let mut stated = self.profiles;
        stated[5] |= self.control.load(Ordering::Relaxed);
        let profiles = match style {
            ProfileStyle::Flat => ProfileSupport::Flat(stated[..7].to_vec()),
            ProfileStyle::Container => ProfileSupport::Container(vec![SupportedProfiles {
                device_type: "MOS".into(),
                profiles: (0..8u8).map(|n| (n, stated[n as usize])).collect(),
            }]),
        };
        ListMachInfo {
            manufacturer: "MOS-NMOS Gateway Project".into(),
            model: "mos-gateway".into(),
            hw_rev: String::new(),
            sw_rev: env!("CARGO_PKG_VERSION").into(),
            dom: String::new(),
            serial: String::new(),
            id: self.mos_id.clone(),
            time: MosTime::now(),
            op_time: Some(self.started.clone()),
            mos_rev: "2.8.1".into(),
            profiles,
            active_x: Vec::new(),
            metadata: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mos::ParseOptions;

    fn parse(xml: &str) -> Parsed {
        Mos::parse(xml, ParseOptions::lenient()).unwrap()
    }

    fn policy() -> SessionPolicy {
        SessionPolicy::new("GW", vec!["NCS".into()])
    }

    /// Every example message: the scan finds its name, and it is applied exactly when its
    /// name is in RUNNING_ORDER_EDITS.
    #[test]
    fn running_order_edits_are_the_messages_applied() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-messages");
        let mut seen = 0;
        for group in std::fs::read_dir(&dir).unwrap() {
            let group = group.unwrap().path();
            if !group.is_dir() || group.ends_with("off-spec") {
                continue;
            }
            for file in std::fs::read_dir(&group).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_none_or(|e| e != "xml") {
                    continue;
                }
                let text = std::fs::read_to_string(&file).unwrap();
                let p = parse(&text);
                let name = p.mos.message.name();
                assert_eq!(
                    crate::mos::peek_message_name(&text),
                    Some(name),
                    "{}",
                    file.display()
                );
                let policy = SessionPolicy::new(&p.mos.mos_id, vec![p.mos.ncs_id.clone()]);
                let applied = matches!(policy.decide(PortRole::Upper, &p), Decision::Apply);
                assert_eq!(
                    applied,
                    RUNNING_ORDER_EDITS.contains(&name),
                    "{}",
                    file.display()
                );
                seen += 1;
            }
        }
        assert!(seen > 100, "only {seen} examples");
    }

    #[test]
    fn the_message_name_is_found_past_declarations_comments_and_the_header() {
        let doc = "<?xml version=\"1.0\"?><!-- <roDelete> --><mos a=\"1\">\n<messageID>3</messageID><mosID>GW</mosID><![CDATA[<x>]]><roCreate><roID>R</roID></roCreate></mos>";
        assert_eq!(crate::mos::peek_message_name(doc), Some("roCreate"));
        assert_eq!(
            crate::mos::peek_message_name("<mos><mosID>GW</mosID></mos>"),
            None
        );
        assert_eq!(crate::mos::peek_message_name("<mos><mosID>GW"), None);
        assert_eq!(crate::mos::peek_message_name("garbage"), None);
    }

    #[test]
    fn heartbeat_is_answered_with_the_same_message_id() {
        let p = parse(
            "<mos><mosID>GW</mosID><ncsID>NCS</ncsID><messageID>0x1F</messageID><heartbeat/></mos>",
        );
        let Decision::Reply(r) = policy().decide(PortRole::Lower, &p) else {
            panic!()
        };
        assert_eq!(r.message_id.as_deref(), Some("0x1F"));
        assert!(matches!(
            r.message,
            Message::Heartbeat(Heartbeat { time: Some(_) })
        ));
    }

    #[test]
    fn wrong_mos_id_and_unknown_ncs_get_distinct_nacks() {
        let p = parse(
            "<mos><mosID>OTHER</mosID><ncsID>NCS</ncsID><messageID>1</messageID><roDelete><roID>R</roID></roDelete></mos>",
        );
        let Decision::Reply(r) = policy().decide(PortRole::Upper, &p) else {
            panic!()
        };
        let Message::RoAck(a) = r.message else {
            panic!()
        };
        assert!(a.status.starts_with("Wrong mosID"), "{}", a.status);
        assert_eq!(a.ro_id, "R");
        let p = parse(
            "<mos><mosID>GW</mosID><ncsID>X</ncsID><messageID>1</messageID><heartbeat/></mos>",
        );
        let Decision::Reply(r) = policy().decide(PortRole::Lower, &p) else {
            panic!()
        };
        let Message::MosAck(a) = r.message else {
            panic!()
        };
        assert!(
            a.description.starts_with("Unknown ncsID"),
            "{}",
            a.description
        );
    }

    #[test]
    fn unknown_messages_get_a_nack_and_keepalive_nothing() {
        let p = parse(
            "<mos><mosID>GW</mosID><ncsID>NCS</ncsID><messageID>1</messageID><fooBar/></mos>",
        );
        let Decision::Reply(r) = policy().decide(PortRole::Lower, &p) else {
            panic!()
        };
        let Message::MosAck(a) = r.message else {
            panic!()
        };
        assert_eq!(a.description, "Unsupported message: fooBar");
        let p = parse(
            "<mos><mosID>GW</mosID><ncsID>NCS</ncsID><messageID>1</messageID><keepAlive/></mos>",
        );
        assert!(matches!(
            policy().decide(PortRole::Upper, &p),
            Decision::Ignore(_)
        ));
    }
}
