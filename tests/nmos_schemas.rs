//! Request bodies the gateway sends, checked against the official NMOS schemas
//! (read from `shared/nmos-schemas`, or `$MOS_GATEWAY_NMOS_SCHEMAS`).

use std::sync::OnceLock;

use mos_gateway::nmos::schemas::{
    IS08_ACTIVATION_POST, IS08_MAP_ENTRIES, NmosApi, SchemaError, SchemaSet, default_dir,
};
use serde_json::{Value, json};

const SENDER: &str = "5709255c-c0ae-4e1e-99a0-e872e83e48e0";
const RECEIVER: &str = "db9f46cf-2414-4e25-b6c6-2078159ae4b4";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=x\r\nt=0 0\r\n";

fn schemas() -> &'static SchemaSet {
    static SET: OnceLock<SchemaSet> = OnceLock::new();
    SET.get_or_init(|| SchemaSet::load(&default_dir()).expect("load NMOS schemas"))
}

#[track_caller]
fn assert_fails_naming(result: Result<(), Vec<String>>, field: &str) {
    let errors = result.expect_err("body should be rejected");
    assert!(
        errors.iter().any(|e| e.contains(field)),
        "no error names {field:?}: {errors:#?}"
    );
}

fn connect(activation: Value) -> Value {
    json!({
        "sender_id": SENDER,
        "master_enable": true,
        "activation": activation,
        "transport_file": {"data": SDP, "type": "application/sdp"},
    })
}

fn is08(activation: Value) -> Value {
    json!({
        "activation": activation,
        "action": {
            "OutA": {
                "0": {"input": "input1", "channel_index": 2},
                "1": {"input": "input1", "channel_index": 3},
                "2": {"input": null, "channel_index": null}
            }
        }
    })
}

// ---- valid bodies -------------------------------------------------------------------------

#[test]
fn is05_connect_bodies_pass() {
    let s = schemas();
    for activation in [
        json!({"mode": "activate_immediate", "requested_time": null}),
        json!({"mode": "activate_immediate"}),
        json!({"mode": "activate_scheduled_absolute", "requested_time": "1544448739:0"}),
        json!({"mode": "activate_scheduled_relative", "requested_time": "2:0"}),
        json!({"mode": null}),
    ] {
        let body = connect(activation);
        assert_eq!(s.validate_is05_staged_patch(&body), Ok(()), "{body}");
    }
    // No activation at all: only staged.
    let mut body = connect(Value::Null);
    body.as_object_mut().unwrap().remove("activation");
    assert_eq!(s.validate_is05_staged_patch(&body), Ok(()));
    // With per-leg RTP parameters (two legs, one untouched).
    body["transport_params"] = json!([
        {"rtp_enabled": true, "interface_ip": "192.0.2.10", "multicast_ip": "239.1.2.3",
         "source_ip": "192.0.2.1", "destination_port": 5004},
        {}
    ]);
    assert_eq!(s.validate_is05_staged_patch(&body), Ok(()));
}

#[test]
fn is05_disconnect_body_passes() {
    let body = json!({
        "sender_id": null,
        "master_enable": false,
        "activation": {"mode": "activate_immediate", "requested_time": null}
    });
    assert_eq!(schemas().validate_is05_staged_patch(&body), Ok(()));
}

#[test]
fn is05_bulk_receivers_body_passes() {
    let body = json!([
        {"id": RECEIVER, "params": connect(json!({"mode": "activate_immediate"}))},
        {"id": "0a174530-e3cf-4b5d-8b37-7c1a5f5e2e4a",
         "params": {"sender_id": null, "master_enable": false,
                    "activation": {"mode": "activate_immediate"}}}
    ]);
    let result = schemas()
        .validate_is05_bulk_receivers(&body)
        .expect("bulk receiver schema is in the shared folder");
    assert_eq!(result, Ok(()));
}

#[test]
fn is08_activation_bodies_pass() {
    let s = schemas();
    for activation in [
        json!({"mode": "activate_immediate"}),
        json!({"mode": "activate_immediate", "requested_time": null}),
        json!({"mode": "activate_scheduled_absolute", "requested_time": "1544448739:0"}),
    ] {
        let body = is08(activation);
        assert_eq!(s.validate_is08_activation(&body), Ok(()), "{body}");
    }
}

#[test]
fn shipped_request_examples_pass() {
    let dir = default_dir();
    let read = |p: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(p)).unwrap()).unwrap()
    };
    let s = schemas();
    for name in [
        "receiver-patch.json",
        "receiver-patch-absolute.json",
        "receiver-patch-activation-only.json",
        "receiver-patch-redundant-streams.json",
        "receiver-patch-relative.json",
        "receiver-patch-transportfile.json",
        "receiver-patch-unicast.json",
    ] {
        let body = read(&format!("is-05/v1.1/examples/{name}"));
        assert_eq!(s.validate_is05_staged_patch(&body), Ok(()), "{name}");
    }
    let bulk = read("is-05/v1.1/examples/bulk-receiver-post.json");
    assert_eq!(s.validate_is05_bulk_receivers(&bulk), Some(Ok(())));
    let post = read("is-08/v1.0/examples/map/map-activations-post.json");
    assert_eq!(s.validate_is08_activation(&post), Ok(()));
}

// ---- invalid bodies -----------------------------------------------------------------------

#[test]
fn is05_wrong_types_fail() {
    let s = schemas();
    let mut body = connect(json!({"mode": "activate_immediate"}));
    body["master_enable"] = json!("yes");
    assert_fails_naming(s.validate_is05_staged_patch(&body), "/master_enable");

    let mut body = connect(json!({"mode": "activate_immediate"}));
    body["sender_id"] = json!(42);
    assert_fails_naming(s.validate_is05_staged_patch(&body), "/sender_id");

    // Upper-case UUID: the pattern wants lower-case hex.
    let mut body = connect(json!({"mode": "activate_immediate"}));
    body["sender_id"] = json!(SENDER.to_uppercase());
    assert_fails_naming(s.validate_is05_staged_patch(&body), "/sender_id");

    let mut body = connect(json!({"mode": "activate_immediate"}));
    body["transport_file"]["data"] = json!(7);
    assert_fails_naming(s.validate_is05_staged_patch(&body), "/transport_file/data");
}

#[test]
fn is05_unknown_activation_mode_fails() {
    let body = connect(json!({"mode": "activate_now"}));
    assert_fails_naming(
        schemas().validate_is05_staged_patch(&body),
        "/activation/mode",
    );
}

#[test]
fn is05_bad_tai_format_fails() {
    let body = connect(json!({"mode": "activate_scheduled_absolute", "requested_time": "123"}));
    assert_fails_naming(
        schemas().validate_is05_staged_patch(&body),
        "/activation/requested_time",
    );
    let body = connect(json!({"mode": "activate_scheduled_absolute", "requested_time": "1.5"}));
    assert_fails_naming(
        schemas().validate_is05_staged_patch(&body),
        "/activation/requested_time",
    );
}

#[test]
fn is05_missing_required_fields_fail() {
    let s = schemas();
    // `activation` present without `mode`.
    let body = connect(json!({"requested_time": null}));
    assert_fails_naming(s.validate_is05_staged_patch(&body), "mode");
    // `transport_file` needs both `data` and `type`.
    let mut body = connect(json!({"mode": "activate_immediate"}));
    body["transport_file"] = json!({"data": SDP});
    assert_fails_naming(s.validate_is05_staged_patch(&body), "type");
    // Bulk items need `id` and `params`.
    let body = json!([{"params": {"master_enable": false}}]);
    assert_fails_naming(s.validate_is05_bulk_receivers(&body).unwrap(), "id");
}

#[test]
fn is05_additional_properties_fail() {
    let s = schemas();
    let mut body = connect(json!({"mode": "activate_immediate"}));
    body["receiver_id"] = json!(RECEIVER);
    assert_fails_naming(s.validate_is05_staged_patch(&body), "receiver_id");

    let body = connect(json!({"mode": "activate_immediate", "when": "now"}));
    assert_fails_naming(s.validate_is05_staged_patch(&body), "when");

    let mut body = connect(json!({"mode": "activate_immediate"}));
    body["transport_file"]["encoding"] = json!("utf-8");
    assert_fails_naming(s.validate_is05_staged_patch(&body), "encoding");
}

#[test]
fn is05_format_assertion_is_on() {
    // The IP checks exist only as `format: ipv4|ipv6`. `transport_params` is an `anyOf` over the
    // transports, so the body-level message names the array; the RTP leg schema names the key.
    let s = schemas();
    for (key, bad) in [("source_ip", "not-an-ip"), ("interface_ip", "eth0")] {
        let mut body = connect(json!({"mode": "activate_immediate"}));
        body["transport_params"] = json!([{ key: bad }]);
        assert_fails_naming(s.validate_is05_staged_patch(&body), "/transport_params");
        let leg = s
            .validate_with_file(
                NmosApi::Is05V1_1,
                "receiver_transport_params_rtp.json",
                &json!({ key: bad }),
            )
            .unwrap();
        assert_fails_naming(leg, &format!("/{key}"));
    }
}

#[test]
fn is08_invalid_bodies_fail() {
    let s = schemas();
    assert_fails_naming(
        s.validate_is08_activation(&is08(json!({"mode": "activate_now"}))),
        "/activation/mode",
    );
    // Unlike IS-05, `mode` may not be null here.
    assert_fails_naming(
        s.validate_is08_activation(&is08(json!({"mode": null}))),
        "/activation/mode",
    );
    assert_fails_naming(
        s.validate_is08_activation(&is08(json!({
            "mode": "activate_scheduled_absolute", "requested_time": "123"
        }))),
        "/activation/requested_time",
    );
    assert_fails_naming(
        s.validate_is08_activation(&is08(json!({"mode": "activate_immediate", "at": 1}))),
        "at",
    );
    assert_fails_naming(
        s.validate_is08_activation(&json!({"activation": {"mode": "activate_immediate"}})),
        "action",
    );
    assert_fails_naming(
        s.validate_is08_activation(&json!({"action": {}})),
        "activation",
    );
    // Wrong types inside the action.
    let mut body = is08(json!({"mode": "activate_immediate"}));
    body["action"]["OutA"]["0"]["channel_index"] = json!("2");
    assert_fails_naming(
        s.validate_is08_activation(&body),
        "/action/OutA/0/channel_index",
    );
    let mut body = is08(json!({"mode": "activate_immediate"}));
    body["action"]["OutA"]["1"]["input"] = json!(5);
    assert_fails_naming(s.validate_is08_activation(&body), "/action/OutA/1/input");
    // Missing `channel_index` in a channel entry.
    let mut body = is08(json!({"mode": "activate_immediate"}));
    body["action"]["OutA"]["0"] = json!({"input": "input1"});
    assert_fails_naming(s.validate_is08_activation(&body), "channel_index");
    // Output ids are restricted by the map entries schema (additionalProperties: false).
    let body = json!({"activation": {"mode": "activate_immediate"},
                      "action": {"bad id!": {"0": {"input": "input1", "channel_index": 0}}}});
    assert_fails_naming(s.validate_is08_activation(&body), "bad id!");
}

// ---- the IS-08 v1.0 schema defects and their workarounds ----------------------------------

#[test]
fn is08_action_content_needs_separate_validation() {
    // The reference's own check: the official request schema alone accepts this body because it
    // names the property "action:" (with a colon).
    let s = schemas();
    let body = json!({"activation": {"mode": "activate_immediate"},
                      "action": {"bad id!": {"x": {"input": 5}}}});
    assert_eq!(
        s.validate_with_file(NmosApi::Is08V1_0, IS08_ACTIVATION_POST, &body)
            .unwrap(),
        Ok(()),
        "the unpatched schema should accept this (defect fixed upstream?)"
    );
    let errors = s.validate_is08_activation(&body).unwrap_err();
    assert!(errors.iter().any(|e| e.contains("bad id!")), "{errors:#?}");

    // `action` of the wrong type also passes the unpatched schema.
    let body = json!({"activation": {"mode": "activate_immediate"}, "action": 5});
    assert_eq!(
        s.validate_with_file(NmosApi::Is08V1_0, IS08_ACTIVATION_POST, &body)
            .unwrap(),
        Ok(())
    );
    assert_fails_naming(s.validate_is08_activation(&body), "/action");
}

#[test]
fn is08_null_channel_entry_needs_code_check() {
    // map-entries-schema.json has no "type": "object" for channel entries.
    let s = schemas();
    let action = json!({"OutA": {"0": null, "1": 3}});
    assert_eq!(
        s.validate_with_file(NmosApi::Is08V1_0, IS08_MAP_ENTRIES, &action)
            .unwrap(),
        Ok(()),
        "the unpatched schema should accept this (defect fixed upstream?)"
    );
    let body = json!({"activation": {"mode": "activate_immediate"}, "action": action});
    let errors = s.validate_is08_activation(&body).unwrap_err();
    assert!(
        errors.iter().any(|e| e.starts_with("/action/OutA/0:")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("/action/OutA/1:")),
        "{errors:#?}"
    );
    // Same for an output entry that is not an object.
    let body = json!({"activation": {"mode": "activate_immediate"}, "action": {"OutA": null}});
    assert_fails_naming(s.validate_is08_activation(&body), "/action/OutA");
}

#[test]
fn is08_extra_top_level_keys_pass_as_in_the_official_schema() {
    // "additionalPropertes" (sic): the reference prescribes no extra check, so extra top-level
    // keys pass, exactly as with the official schema.
    let mut body = is08(json!({"mode": "activate_immediate"}));
    body["extra"] = json!(true);
    assert_eq!(schemas().validate_is08_activation(&body), Ok(()));
}

// ---- loading ------------------------------------------------------------------------------

#[test]
fn missing_directory_is_an_io_error_naming_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let err = SchemaSet::load(dir.path()).unwrap_err();
    assert!(matches!(err, SchemaError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("is-05/v1.1/APIs/schemas"), "{err}");
}

#[test]
fn missing_schema_file_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let src = default_dir();
    for api in [NmosApi::Is05V1_1, NmosApi::Is08V1_0] {
        let to = dir.path().join(api.schemas_subdir());
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(src.join(api.schemas_subdir())).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != IS08_MAP_ENTRIES {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }
    let err = SchemaSet::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains(IS08_MAP_ENTRIES), "{err}");
}

#[test]
fn invalid_json_is_reported_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join(NmosApi::Is05V1_1.schemas_subdir());
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("broken.json"), "{").unwrap();
    let err = SchemaSet::load(dir.path()).unwrap_err();
    assert!(matches!(err, SchemaError::Json { .. }), "{err:?}");
    assert!(err.to_string().contains("broken.json"), "{err}");
}
