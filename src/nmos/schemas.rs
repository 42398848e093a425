//! Validating the request bodies the gateway sends against the official AMWA JSON schemas.
//!
//! The schema files are not part of this repository: they are read at run time from a folder
//! laid out like `shared/nmos-schemas/` (see its `SOURCES.md`):
//!
//! ```text
//! <dir>/is-05/v1.1/APIs/schemas/*.json
//! <dir>/is-08/v1.0/APIs/schemas/*.json
//! ```
//!
//! All files are JSON Schema draft-04, have no `id`, and refer to each other by bare sibling
//! file name (`"$ref": "activation-schema.json"`). Every file of an API's folder is loaded into
//! memory and handed to the `jsonschema` crate through a retriever that answers only from that
//! map, under a fixed base URI per folder (`file:///nmos/<api>/<version>/schemas/<name>.json`),
//! so reference resolution never touches the network or the working directory.
//!
//! Validators use draft 4 explicitly and assert `format` (the IS-05 IP address checks exist only
//! as `format: ipv4|ipv6`; without format assertion any string would pass).
//!
//! Validation failures are reported as `"<instance path>: <problem>"` strings, the path being a
//! JSON pointer into the body (`/` for the body itself).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::Value;

/// Environment variable that, when set, overrides [`default_dir`].
pub const SCHEMAS_DIR_ENV: &str = "MOS_GATEWAY_NMOS_SCHEMAS";

/// IS-05 receiver staged PATCH body (`PATCH /single/receivers/{id}/staged`).
pub const IS05_RECEIVER_STAGE: &str = "receiver-stage-schema.json";
/// IS-05 bulk receiver POST body (`POST /bulk/receivers`).
pub const IS05_BULK_RECEIVERS: &str = "bulk-receiver-post-schema.json";
/// IS-08 map activation POST body (`POST /map/activations`).
pub const IS08_ACTIVATION_POST: &str = "map-activations-post-request-schema.json";
/// IS-08 map table entries (used for the `action` object; see [`SchemaSet::validate_is08_activation`]).
pub const IS08_MAP_ENTRIES: &str = "map-entries-schema.json";

/// The schema folders the gateway uses, relative to the schema directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NmosApi {
    /// IS-05 Device Connection Management v1.1 (Connection API).
    Is05V1_1,
    /// IS-08 Audio Channel Mapping v1.0 (Channel Mapping API).
    Is08V1_0,
}

impl NmosApi {
    /// The folder holding the API's schema files, relative to the schema directory.
    pub fn schemas_subdir(self) -> &'static str {
        match self {
            NmosApi::Is05V1_1 => "is-05/v1.1/APIs/schemas",
            NmosApi::Is08V1_0 => "is-08/v1.0/APIs/schemas",
        }
    }

    /// The in-memory base URI the folder's files are registered under.
    fn base_uri(self) -> &'static str {
        match self {
            NmosApi::Is05V1_1 => "file:///nmos/is-05/v1.1/schemas/",
            NmosApi::Is08V1_0 => "file:///nmos/is-08/v1.0/schemas/",
        }
    }
}

/// Failure to load the schema files or to build a validator from them.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A schema folder or file could not be read.
    #[error("cannot read NMOS schema {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A schema file is not valid JSON.
    #[error("NMOS schema {} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A schema file the gateway needs is not in its folder.
    #[error("NMOS schema {} is missing", path.display())]
    Missing { path: PathBuf },
    /// The `jsonschema` crate refused to build a validator (bad schema, unresolved `$ref`,
    /// unsupported regex, ...).
    #[error("cannot build a validator from NMOS schema {}: {message}", path.display())]
    Compile { path: PathBuf, message: String },
}

/// The schema directory: `$MOS_GATEWAY_NMOS_SCHEMAS` when set (and not empty), otherwise
/// `shared/nmos-schemas` beside the repository clone.
pub fn default_dir() -> PathBuf {
    match std::env::var_os(SCHEMAS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/nmos-schemas"
        )),
    }
}

/// The schema files of one API folder, keyed by file name.
#[derive(Debug)]
struct Folder {
    api: NmosApi,
    path: PathBuf,
    files: Arc<HashMap<String, Value>>,
}

impl Folder {
    fn load(root: &Path, api: NmosApi) -> Result<Self, SchemaError> {
        let path = root.join(api.schemas_subdir());
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SchemaError::Io { path, source }
        };
        let mut files = HashMap::new();
        for entry in std::fs::read_dir(&path).map_err(io(&path))? {
            let entry = entry.map_err(io(&path))?;
            let file = entry.path();
            let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".json") {
                continue;
            }
            let text = std::fs::read_to_string(&file).map_err(io(&file))?;
            let value: Value = serde_json::from_str(&text).map_err(|source| SchemaError::Json {
                path: file.clone(),
                source,
            })?;
            files.insert(name.to_owned(), value);
        }
        Ok(Folder {
            api,
            path,
            files: Arc::new(files),
        })
    }

    /// Builds a draft-4, format-asserting validator for one file of the folder.
    fn validator(&self, name: &str) -> Result<Validator, SchemaError> {
        let path = self.path.join(name);
        let schema = self
            .files
            .get(name)
            .ok_or_else(|| SchemaError::Missing { path: path.clone() })?;
        jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(true)
            .with_base_uri(format!("{}{name}", self.api.base_uri()))
            .with_retriever(FolderRetriever {
                base: self.api.base_uri(),
                files: Arc::clone(&self.files),
            })
            .build(schema)
            .map_err(|e| SchemaError::Compile {
                path,
                message: e.to_string(),
            })
    }
}

/// Answers `$ref`s to sibling files from memory; anything else is refused (offline).
struct FolderRetriever {
    base: &'static str,
    files: Arc<HashMap<String, Value>>,
}

impl Retrieve for FolderRetriever {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let uri = uri.as_str();
        let name = uri.split('#').next().unwrap_or(uri);
        name.strip_prefix(self.base)
            .and_then(|name| self.files.get(name))
            .cloned()
            .ok_or_else(|| format!("{uri} is not a schema file of this folder (offline)").into())
    }
}

/// Validators for every request body the gateway sends to IS-05 and IS-08 devices.
#[derive(Debug)]
pub struct SchemaSet {
    dir: PathBuf,
    is05: Folder,
    is08: Folder,
    is05_receiver_stage: Validator,
    is05_bulk_receivers: Option<Validator>,
    is08_activation_post: Validator,
    is08_map_entries: Validator,
}

impl SchemaSet {
    /// Loads the IS-05 v1.1 and IS-08 v1.0 schema folders under `dir` and builds the request
    /// validators. The bulk receiver schema is optional; the others must be present.
    pub fn load(dir: &Path) -> Result<Self, SchemaError> {
        let is05 = Folder::load(dir, NmosApi::Is05V1_1)?;
        let is08 = Folder::load(dir, NmosApi::Is08V1_0)?;
        let is05_bulk_receivers = if is05.files.contains_key(IS05_BULK_RECEIVERS) {
            Some(is05.validator(IS05_BULK_RECEIVERS)?)
        } else {
            None
        };
        Ok(SchemaSet {
            dir: dir.to_path_buf(),
            is05_receiver_stage: is05.validator(IS05_RECEIVER_STAGE)?,
            is05_bulk_receivers,
            is08_activation_post: is08.validator(IS08_ACTIVATION_POST)?,
            is08_map_entries: is08.validator(IS08_MAP_ENTRIES)?,
            is05,
            is08,
        })
    }

    /// [`SchemaSet::load`] from [`default_dir`].
    pub fn load_default() -> Result<Self, SchemaError> {
        Self::load(&default_dir())
    }

    /// The directory the schemas were loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Validates a receiver staged PATCH body (`receiver-stage-schema.json`, IS-05 v1.1).
    pub fn validate_is05_staged_patch(&self, body: &Value) -> Result<(), Vec<String>> {
        collect(&self.is05_receiver_stage, body, "")
    }

    /// Validates a bulk receiver POST body (`bulk-receiver-post-schema.json`, IS-05 v1.1).
    /// `None` when the schema folder does not have that file.
    pub fn validate_is05_bulk_receivers(&self, body: &Value) -> Option<Result<(), Vec<String>>> {
        self.is05_bulk_receivers
            .as_ref()
            .map(|v| collect(v, body, ""))
    }

    /// Validates a map activation POST body (`POST /map/activations`, IS-08 v1.0).
    ///
    /// The official v1.0 schemas have defects (reference `nmos.md` 7.6), worked around here as
    /// the reference (7.6, 10 and 11) prescribes; the schema files themselves are left as
    /// published:
    ///
    /// 1. `map-activations-post-request-schema.json` names the property `"action:"` (with a
    ///    colon), so `action` is only checked for presence and its content is never validated.
    ///    Workaround: `body.action` is validated separately against `map-entries-schema.json`.
    /// 2. The same file writes `"additionalPropertes"`, a keyword draft 4 ignores. The reference
    ///    only records the effect (extra top-level keys pass) and prescribes no check for it, so
    ///    none is added: the body gets exactly what the official schema gives it.
    /// 3. `map-entries-schema.json` gives channel entries no `"type": "object"` (nor the output
    ///    entries holding them), so a `null` (or number, string, ...) channel entry passes.
    ///    Workaround: a check in code that each output entry and each channel entry of
    ///    `body.action` is an object.
    pub fn validate_is08_activation(&self, body: &Value) -> Result<(), Vec<String>> {
        let mut problems = collect(&self.is08_activation_post, body, "")
            .err()
            .unwrap_or_default();
        if let Some(action) = body.get("action") {
            // Workaround 1: the content of `action`, against the map entries schema; paths are
            // reported relative to the body.
            if let Err(errors) = collect(&self.is08_map_entries, action, "/action") {
                problems.extend(errors);
            }
            // Workaround 3: entries must be objects.
            if let Some(outputs) = action.as_object() {
                for (output, channels) in outputs {
                    let output_path = format!("/action/{}", escape_pointer(output));
                    let Some(channels) = channels.as_object() else {
                        problems.push(format!(
                            "{output_path}: {channels} is not of type \"object\" (output entry)"
                        ));
                        continue;
                    };
                    for (channel, entry) in channels {
                        if !entry.is_object() {
                            problems.push(format!(
                                "{output_path}/{}: {entry} is not of type \"object\" (channel entry)",
                                escape_pointer(channel)
                            ));
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Validates `instance` against any schema file of an API folder, with no workaround
    /// applied (for response bodies in tests and logs, and to show the defects above).
    /// The validator is built on each call.
    pub fn validate_with_file(
        &self,
        api: NmosApi,
        file: &str,
        instance: &Value,
    ) -> Result<Result<(), Vec<String>>, SchemaError> {
        let folder = match api {
            NmosApi::Is05V1_1 => &self.is05,
            NmosApi::Is08V1_0 => &self.is08,
        };
        Ok(collect(&folder.validator(file)?, instance, ""))
    }
}

/// Runs a validator and turns its errors into `"path: problem"` strings.
/// `prefix` is the JSON pointer of `instance` inside the body ("" for the body itself).
fn collect(validator: &Validator, instance: &Value, prefix: &str) -> Result<(), Vec<String>> {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| {
            let path = format!("{prefix}{}", e.instance_path().as_str());
            let path = if path.is_empty() { "/" } else { path.as_str() };
            format!("{path}: {e}")
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Escapes a key for use as a JSON pointer segment (RFC 6901).
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
