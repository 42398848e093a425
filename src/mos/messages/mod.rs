//! One type per MOS message, grouped by profile, and the [`Message`] enum of them all.

pub mod legacy;
pub mod profile0;
pub mod profile1;
pub mod profile2;
pub mod profile3;
pub mod profile4;
pub mod profile5;

use super::error::ParseError;
use super::read::Cx;
use super::xml::{El, XmlWriter};

pub use super::structures::MosObj;
pub use legacy::*;
pub use profile0::*;
pub use profile1::*;
pub use profile2::*;
pub use profile3::*;
pub use profile4::*;
pub use profile5::*;

/// A message element: read from its element, written with the spec's element order.
pub trait Body: Sized {
    /// The element name (`roCreate`, `heartbeat`, ...).
    const NAME: &'static str;
    /// Reads the message from its element.
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError>;
    /// Writes the message element.
    fn write(&self, w: &mut XmlWriter);
}

/// The MOS port a message family travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    /// 10540: the mos* family.
    Lower,
    /// 10541: the ro* family and mosItemReplace.
    Upper,
    /// 10542: the mosReqObjList family.
    Query,
    /// heartbeat, reqMachInfo, listMachInfo: lower or upper.
    Any,
}

macro_rules! messages {
    ($($(#[$m:meta])* $variant:ident($ty:ty) = $port:ident),+ $(,)?) => {
        /// Every MOS message the gateway reads or writes.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Message {
            $($(#[$m])* $variant($ty),)+
            /// A well-formed message element this gateway does not know.
            Unknown {
                /// Its element name.
                name: String,
            },
        }

        impl Message {
            /// Every message element name the gateway knows.
            pub const NAMES: &'static [&'static str] = &[$(<$ty as Body>::NAME),+];

            /// The message element name.
            pub fn name(&self) -> &str {
                match self {
                    $(Self::$variant(_) => <$ty as Body>::NAME,)+
                    Self::Unknown { name } => name,
                }
            }

            /// The port the message family belongs to.
            pub fn port(&self) -> Port {
                match self {
                    $(Self::$variant(_) => Port::$port,)+
                    Self::Unknown { .. } => Port::Any,
                }
            }

            /// Reads the message element `el` (already known to be named `name`).
            pub(crate) fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
                Ok(match el.name() {
                    $(<$ty as Body>::NAME => {
                        cx.set_message(<$ty as Body>::NAME);
                        cx.enter(<$ty as Body>::NAME, None);
                        let r = <$ty as Body>::read(el, cx);
                        cx.leave();
                        Self::$variant(r?)
                    })+
                    other => Self::Unknown { name: other.to_string() },
                })
            }

            /// Writes the message element.
            pub(crate) fn write(&self, w: &mut XmlWriter) {
                match self {
                    $(Self::$variant(m) => m.write(w),)+
                    Self::Unknown { name } => w.empty(name),
                }
            }
        }
    };
}

messages! {
    /// heartbeat.
    Heartbeat(Heartbeat) = Any,
    /// reqMachInfo.
    ReqMachInfo(ReqMachInfo) = Any,
    /// listMachInfo.
    ListMachInfo(ListMachInfo) = Any,
    /// mosAck.
    MosAck(MosAck) = Lower,
    /// mosObj.
    MosObj(MosObj) = Lower,
    /// mosReqObj.
    MosReqObj(MosReqObj) = Lower,
    /// mosReqAll.
    MosReqAll(MosReqAll) = Lower,
    /// mosListAll.
    MosListAll(MosListAll) = Lower,
    /// mosReqSearchableSchema.
    MosReqSearchableSchema(MosReqSearchableSchema) = Query,
    /// mosListSearchableSchema.
    MosListSearchableSchema(MosListSearchableSchema) = Query,
    /// mosReqObjList.
    MosReqObjList(MosReqObjList) = Query,
    /// mosObjList.
    MosObjList(MosObjList) = Query,
    /// mosObjCreate.
    MosObjCreate(MosObjCreate) = Lower,
    /// mosItemReplace (upper port).
    MosItemReplace(MosItemReplace) = Upper,
    /// mosReqObjAction (2.8.2+).
    MosReqObjAction(MosReqObjAction) = Lower,
    /// roAck.
    RoAck(RoAck) = Upper,
    /// roCreate.
    RoCreate(RoCreate) = Upper,
    /// roReplace.
    RoReplace(RoReplace) = Upper,
    /// roMetadataReplace.
    RoMetadataReplace(RoMetadataReplace) = Upper,
    /// roDelete.
    RoDelete(RoDelete) = Upper,
    /// roReq.
    RoReq(RoReq) = Upper,
    /// roList.
    RoList(RoList) = Upper,
    /// roStat.
    RoStat(RoStat) = Upper,
    /// roItemStat.
    RoItemStat(RoItemStat) = Upper,
    /// roElementStat (2.8.3+).
    RoElementStat(RoElementStat) = Upper,
    /// roReadyToAir.
    RoReadyToAir(RoReadyToAir) = Upper,
    /// roStoryAppend.
    RoStoryAppend(RoStoryAppend) = Upper,
    /// roStoryInsert.
    RoStoryInsert(RoStoryInsert) = Upper,
    /// roStoryReplace.
    RoStoryReplace(RoStoryReplace) = Upper,
    /// roStoryMove.
    RoStoryMove(RoStoryMove) = Upper,
    /// roStorySwap.
    RoStorySwap(RoStorySwap) = Upper,
    /// roStoryDelete.
    RoStoryDelete(RoStoryDelete) = Upper,
    /// roStoryMoveMultiple.
    RoStoryMoveMultiple(RoStoryMoveMultiple) = Upper,
    /// roItemInsert.
    RoItemInsert(RoItemInsert) = Upper,
    /// roItemReplace.
    RoItemReplace(RoItemReplace) = Upper,
    /// roItemMoveMultiple.
    RoItemMoveMultiple(RoItemMoveMultiple) = Upper,
    /// roItemDelete.
    RoItemDelete(RoItemDelete) = Upper,
    /// roElementAction.
    RoElementAction(RoElementAction) = Upper,
    /// roReqAll.
    RoReqAll(RoReqAll) = Upper,
    /// roListAll.
    RoListAll(RoListAll) = Upper,
    /// roStorySend.
    RoStorySend(RoStorySend) = Upper,
    /// roItemCue (Profile 5).
    RoItemCue(RoItemCue) = Upper,
    /// roCtrl (Profile 5).
    RoCtrl(RoCtrl) = Upper,
}
