//! Objects (MOS Profiles 1 and 3): the catalogue of objects the gateway offers to newsroom
//! systems, and the search behind mosReqObjList.
//!
//! Pure and synchronous: no sockets. The session layer answers mosReqObj, mosReqAll,
//! mosObjCreate and mosReqObjList from here, and pushes the [`ObjectChange`]s of
//! [`Catalogue::subscribe`] to every NCS as mosObj NEW / UPDATED / DELETED.
//!
//! - [`catalogue`]: the [`Catalogue`] trait, the [`MemoryCatalogue`] (objects from the
//!   configuration, placeholders created by NCSs, later the NMOS sources) and placeholder
//!   persistence.
//! - [`search`](mod@search): mosReqObjList → mosObjList (generalSearch, searchGroups, sorting, paging) and
//!   the searchable schema.
//! - [`xpath`]: the XPath subset of searchField.

pub mod catalogue;
pub mod push_queue;
pub mod search;
pub mod xpath;

pub use catalogue::{
    Catalogue, ChangeKind, CreateError, MemoryCatalogue, ObjectChange, PlaceholderStore,
    VolatilePlaceholders, object_from_config,
};
pub use search::{description_text, search, searchable_schema};
