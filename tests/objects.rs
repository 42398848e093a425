//! Objects (Profiles 1 and 3): the catalogue, placeholders and mosReqObjList search.

use std::path::Path;
use std::process::Command;

use mos_gateway::config::Config;
use mos_gateway::mos::messages::{
    MosObjCreate, MosObjList, MosReqObjList, SearchField, SearchGroup,
};
use mos_gateway::mos::structures::{AirStatus, MosExternalMetadata, MosObj, ObjType, RawXml};
use mos_gateway::mos::time::MosTime;
use mos_gateway::mos::{Message, Mos, ParseOptions};
use mos_gateway::objects::xpath::Field;
use mos_gateway::objects::{
    Catalogue, ChangeKind, CreateError, MemoryCatalogue, PlaceholderStore, VolatilePlaceholders,
    search, searchable_schema,
};
use mos_gateway::store::{Store, StoreError};

const SCHEMA: &str = "http://nmos-gateway.local/mos/search.xsd";

// ---------------------------------------------------------------------------------------------
// Fixtures

fn obj(id: &str, slug: &str, t: ObjType, group: Option<&str>, dur: u32, desc: &str) -> MosObj {
    MosObj {
        id: id.into(),
        slug: slug.into(),
        abstract_: None,
        group: group.map(str::to_owned),
        obj_type: t,
        time_base: 50.0,
        revision: 1,
        duration: dur,
        status: "NEW".into(),
        air: AirStatus::Ready,
        paths: Vec::new(),
        created_by: "op".into(),
        created: MosTime::from_wire("2024-05-01T16:00:00,000Z"),
        changed_by: "op".into(),
        changed: MosTime::from_wire("2024-05-01T16:00:00,000Z"),
        description: RawXml(desc.into()),
        metadata: Vec::new(),
    }
}

/// Six objects in catalogue order.
fn objects() -> Vec<MosObj> {
    let mut ph = obj("PH-1", "Remote: Oslo reporter", ObjType::Video, None, 0, "");
    ph.air = AirStatus::NotReady;
    ph.created = MosTime::from_wire("2024-05-01T15:00:00,000Z");
    vec![
        obj(
            "CLIP-1",
            "Evening news open",
            ObjType::Video,
            Some("Clips"),
            750,
            "<p>Titles &amp; music</p>",
        ),
        obj(
            "CLIP-2",
            "Harbour fire",
            ObjType::Video,
            Some("News"),
            2000,
            "Aerial shots of the <em>blaze</em>",
        ),
        obj(
            "AUD-1",
            "News jingle",
            ObjType::Audio,
            Some("Jingles"),
            225,
            "",
        ),
        obj(
            "GFX-1",
            "weather map",
            ObjType::Still,
            None,
            0,
            "Full-screen map",
        ),
        obj(
            "CLIP-3",
            "Fire drill",
            ObjType::Video,
            Some("News"),
            500,
            "",
        ),
        ph,
    ]
}

type F<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

fn request(
    general: &str,
    groups: &[&[F<'_>]],
    start: Option<u32>,
    end: Option<u32>,
) -> MosReqObjList {
    MosReqObjList {
        username: None,
        query_id: "q-42".into(),
        list_return_start: start,
        list_return_end: end,
        general_search: general.into(),
        schema: SCHEMA.into(),
        groups: groups
            .iter()
            .map(|g| SearchGroup {
                fields: g
                    .iter()
                    .map(|(x, o, t)| SearchField {
                        xpath: (*x).into(),
                        sort_by_order: o.map(str::to_owned),
                        sort_type: t.map(str::to_owned),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn run(general: &str, groups: &[&[F<'_>]]) -> MosObjList {
    search(&objects(), &request(general, groups, Some(1), None), SCHEMA)
}

fn ids(list: &MosObjList) -> Vec<&str> {
    list.objects.iter().map(|o| o.id.as_str()).collect()
}

fn general(q: &str) -> Vec<String> {
    ids(&run(q, &[])).into_iter().map(str::to_owned).collect()
}

fn xpath(x: &str) -> Vec<String> {
    ids(&run("", &[&[(x, None, None)]]))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// generalSearch

#[test]
fn empty_general_search_returns_everything_in_catalogue_order() {
    let r = run("", &[]);
    assert_eq!(
        ids(&r),
        ["CLIP-1", "CLIP-2", "AUD-1", "GFX-1", "CLIP-3", "PH-1"]
    );
    assert_eq!(r.query_id, "q-42");
    assert_eq!((r.list_return_start, r.list_return_end), (1, 6));
    assert_eq!(r.list_return_total, Some(6));
    assert_eq!(r.list_return_status, None);
    assert_eq!(general("   "), general(""));
}

#[test]
fn general_search_fields_and_case() {
    assert_eq!(general("fire"), ["CLIP-2", "CLIP-3"]);
    assert_eq!(general("FIRE"), ["CLIP-2", "CLIP-3"]);
    assert_eq!(general("clip-1"), ["CLIP-1"], "objID");
    assert_eq!(general("jingles"), ["AUD-1"], "objGroup");
    assert_eq!(general("audio"), ["AUD-1"], "objType");
    assert_eq!(general("still"), ["GFX-1"], "objType");
    assert_eq!(general("titles"), ["CLIP-1"], "description");
    assert_eq!(general("blaze"), ["CLIP-2"], "text inside markup");
    assert!(
        general("amp").is_empty(),
        "entities are resolved, not searched"
    );
    assert!(general("<em>").is_empty(), "markup is not searched");
    assert_eq!(general("Oslo"), ["PH-1"]);
    assert_eq!(
        general("news"),
        ["CLIP-1", "CLIP-2", "AUD-1", "CLIP-3"],
        "substring of words"
    );
}

#[test]
fn general_search_operators() {
    assert_eq!(general("fire drill"), ["CLIP-3"], "words are ANDed");
    assert_eq!(general("fire and drill"), ["CLIP-3"]);
    assert_eq!(general("fire AND drill"), ["CLIP-3"]);
    assert_eq!(general("jingle or weather"), ["AUD-1", "GFX-1"]);
    assert_eq!(general("jingle OR Weather"), ["AUD-1", "GFX-1"]);
    assert_eq!(general("fire not drill"), ["CLIP-2"]);
    assert_eq!(general("fire NOT drill"), ["CLIP-2"]);
    assert_eq!(general("not video"), ["AUD-1", "GFX-1"]);
    assert_eq!(general("(jingle or weather) not map"), ["AUD-1"]);
    assert_eq!(
        general("news and not jingle or map"),
        ["CLIP-1", "CLIP-2", "GFX-1", "CLIP-3"]
    );
    assert_eq!(
        general("and fire or"),
        ["CLIP-2", "CLIP-3"],
        "dangling operators are ignored"
    );
}

#[test]
fn general_search_phrases() {
    assert_eq!(general("\"harbour fire\""), ["CLIP-2"]);
    assert_eq!(general("\"Harbour   FIRE\""), ["CLIP-2"]);
    assert!(general("\"fire harbour\"").is_empty());
    assert_eq!(general("\"titles & music\""), ["CLIP-1"]);
    assert_eq!(
        general("\"remote: oslo\" or \"fire drill\""),
        ["CLIP-3", "PH-1"]
    );
    assert_eq!(
        general("\"and\""),
        Vec::<String>::new(),
        "a quoted operator is a word"
    );
}

// ---------------------------------------------------------------------------------------------
// searchGroups

#[test]
fn fields_within_a_group_are_anded() {
    let r = run(
        "",
        &[&[
            ("/mosObj[objType='VIDEO']", None, None),
            ("/mosObj/objGroup = 'News'", None, None),
        ]],
    );
    assert_eq!(ids(&r), ["CLIP-2", "CLIP-3"]);
}

#[test]
fn groups_are_ored() {
    let r = run(
        "",
        &[
            &[("/mosObj[objType='AUDIO']", None, None)],
            &[("/mosObj[objType='STILL']", None, None)],
        ],
    );
    assert_eq!(ids(&r), ["AUD-1", "GFX-1"]);
    let r = run(
        "",
        &[
            &[
                ("objType='VIDEO'", None, None),
                ("objDur > 1000", None, None),
            ],
            &[("objType='AUDIO'", None, None)],
        ],
    );
    assert_eq!(ids(&r), ["CLIP-2", "AUD-1"]);
}

#[test]
fn groups_are_anded_with_general_search() {
    let r = run("fire", &[&[("/mosObj/objGroup = 'News'", None, None)]]);
    assert_eq!(ids(&r), ["CLIP-2", "CLIP-3"]);
    let r = run(
        "harbour or jingle",
        &[
            &[("objType='VIDEO'", None, None)],
            &[("objType='STILL'", None, None)],
        ],
    );
    assert_eq!(ids(&r), ["CLIP-2"]);
    let r = run("weather", &[&[("objType='VIDEO'", None, None)]]);
    assert!(r.objects.is_empty());
}

#[test]
fn every_xpath_form() {
    assert_eq!(
        xpath("/mosObj/objGroup"),
        ["CLIP-1", "CLIP-2", "AUD-1", "CLIP-3"]
    );
    assert_eq!(
        xpath("/mosObj[objType='VIDEO']"),
        ["CLIP-1", "CLIP-2", "CLIP-3", "PH-1"]
    );
    assert_eq!(xpath("/mosObj/objDur[.>500]"), ["CLIP-1", "CLIP-2"]);
    assert_eq!(
        xpath("/mosObj/objDur[. >= 500]"),
        ["CLIP-1", "CLIP-2", "CLIP-3"]
    );
    assert_eq!(xpath("/mosObj/objDur < 500"), ["AUD-1", "GFX-1", "PH-1"]);
    assert_eq!(xpath("/mosObj/objDur <= 225"), ["AUD-1", "GFX-1", "PH-1"]);
    assert_eq!(xpath("/mosObj/objDur = 225"), ["AUD-1"]);
    assert_eq!(xpath("/mosObj/objType != 'VIDEO'"), ["AUD-1", "GFX-1"]);
    assert_eq!(
        xpath("contains(objSlug,'News')"),
        ["AUD-1"],
        "case-sensitive"
    );
    assert_eq!(xpath("contains(objSlug,'news')"), ["CLIP-1"]);
    assert_eq!(
        xpath("starts-with(objID,'CLIP')"),
        ["CLIP-1", "CLIP-2", "CLIP-3"]
    );
    assert_eq!(xpath("/mosObj/objAir = 'NOT READY'"), ["PH-1"]);
    assert_eq!(xpath("not(/mosObj/objGroup)"), ["GFX-1", "PH-1"]);
    assert_eq!(
        xpath("/mosObj[objDur >= 500 and objDur <= 750]"),
        ["CLIP-1", "CLIP-3"]
    );
    assert_eq!(
        xpath("objGroup = 'Jingles' or objType = 'STILL'"),
        ["AUD-1", "GFX-1"]
    );
    assert_eq!(xpath("//objSlug[contains(., 'fire')]"), ["CLIP-2"]);
    assert_eq!(
        xpath("/mosObj/description[contains(., 'Titles & music')]"),
        ["CLIP-1"]
    );
    assert_eq!(xpath("/mosObj/objTB = 50").len(), 6);
    assert_eq!(xpath("mosObj/objID = 'GFX-1'"), ["GFX-1"]);
    assert_eq!(xpath("true()").len(), 6);
    assert!(xpath("false()").is_empty());
}

#[test]
fn an_xpath_outside_the_subset_answers_nothing_and_says_why() {
    for (x, why) in [
        ("/mosObj/@objID", "attributes"),
        (
            "/mosObj/objName",
            "\"objName\" is not in the searchable schema",
        ),
        (
            "/mosObj/mosExternalMetadata/mosPayload/x",
            "not in the searchable schema",
        ),
        ("objDur + 1 > 2", "arithmetic"),
        ("lower-case(objSlug) = 'x'", "lower-case() is not supported"),
        ("/mosObj[objType='VIDEO'", "not closed"),
        ("", "empty"),
    ] {
        // Even next to a valid field, in another group.
        let r = run(
            "",
            &[&[("objType='VIDEO'", None, None)], &[(x, None, None)]],
        );
        assert!(r.objects.is_empty(), "{x}");
        assert_eq!(r.list_return_total, Some(0));
        assert_eq!((r.list_return_start, r.list_return_end), (0, 0));
        let status = r.list_return_status.unwrap_or_default();
        assert!(status.starts_with("unsupported XPath"), "{status}");
        assert!(status.contains(why), "{x}: {status}");
        assert!(status.chars().count() <= 128);
        assert_eq!(r.query_id, "q-42");
    }
    let long = format!("/mosObj/{}", "a".repeat(500));
    let r = run("", &[&[(&long, None, None)]]);
    assert!(r.list_return_status.unwrap_or_default().chars().count() <= 128);
}

#[test]
fn a_foreign_schema_is_noted_but_read_as_ours() {
    let mut req = request("", &[&[("objType='AUDIO'", None, None)]], Some(1), None);
    req.schema = "http://other.example/schema.xsd".into();
    let r = search(&objects(), &req, SCHEMA);
    assert_eq!(ids(&r), ["AUD-1"]);
    let status = r.list_return_status.unwrap_or_default();
    assert!(status.contains("other.example"), "{status}");
    // Without searchGroups the schema does not matter.
    req.groups.clear();
    assert_eq!(search(&objects(), &req, SCHEMA).list_return_status, None);
}

// ---------------------------------------------------------------------------------------------
// Sorting

#[test]
fn sorting_ascending_by_default_and_descending() {
    let up = run("", &[&[("/mosObj/objSlug", Some("1"), None)]]);
    assert_eq!(
        ids(&up),
        ["CLIP-1", "CLIP-3", "CLIP-2", "AUD-1", "PH-1", "GFX-1"],
        "case-insensitive: Evening, Fire, Harbour, News, Remote, weather"
    );
    let up2 = run("", &[&[("/mosObj/objSlug", Some("1"), Some("ASCENDING"))]]);
    assert_eq!(ids(&up2), ids(&up));
    let down = run("", &[&[("/mosObj/objSlug", Some("1"), Some("DESCENDING"))]]);
    let mut reversed = ids(&up);
    reversed.reverse();
    assert_eq!(ids(&down), reversed);
    // Numbers sort as numbers, not text.
    let by_dur = run("", &[&[("/mosObj/objDur", Some("1"), Some("descending"))]]);
    assert_eq!(
        ids(&by_dur),
        ["CLIP-2", "CLIP-1", "CLIP-3", "AUD-1", "GFX-1", "PH-1"]
    );
    // Times sort as instants.
    let by_created = run("", &[&[("/mosObj/created", Some("1"), None)]]);
    assert_eq!(ids(&by_created)[0], "PH-1");
}

#[test]
fn sorting_by_several_keys() {
    // objType ascending, then objDur descending; ties keep catalogue order.
    let r = run(
        "",
        &[&[
            ("/mosObj/objDur", Some("2"), Some("DESCENDING")),
            ("/mosObj[objType != 'X']", Some("1"), None),
        ]],
    );
    assert_eq!(
        ids(&r),
        ["AUD-1", "GFX-1", "CLIP-2", "CLIP-1", "CLIP-3", "PH-1"]
    );
    // The same field repeated in several groups with the same order is one key; the filter
    // is still ORed.
    let r = run(
        "",
        &[
            &[
                (
                    "/mosObj/objGroup[. = 'News']",
                    Some("1"),
                    Some("DESCENDING"),
                ),
                ("/mosObj/objSlug", Some("2"), None),
            ],
            &[(
                "/mosObj/objGroup[. = 'Clips']",
                Some("1"),
                Some("DESCENDING"),
            )],
        ],
    );
    assert_eq!(ids(&r), ["CLIP-3", "CLIP-2", "CLIP-1"]);
    assert_eq!(r.list_return_status, None);
}

#[test]
fn objects_without_the_sort_field_come_last_when_ascending() {
    let up = run(
        "",
        &[
            &[("/mosObj/objID", None, None)],
            &[("objGroup", Some("1"), None)],
        ],
    );
    assert_eq!(
        ids(&up),
        ["CLIP-1", "AUD-1", "CLIP-2", "CLIP-3", "GFX-1", "PH-1"]
    );
    let down = run(
        "",
        &[
            &[("/mosObj/objID", None, None)],
            &[("objGroup", Some("1"), Some("DESCENDING"))],
        ],
    );
    assert_eq!(
        ids(&down),
        ["GFX-1", "PH-1", "CLIP-2", "CLIP-3", "AUD-1", "CLIP-1"]
    );
}

#[test]
fn sort_problems_are_noted() {
    let r = run(
        "",
        &[&[
            ("/mosObj/objSlug", Some("first"), None),
            ("true()", Some("1"), None),
        ]],
    );
    assert_eq!(r.objects.len(), 6);
    let status = r.list_return_status.unwrap_or_default();
    assert!(status.contains("not a number"), "{status}");
    assert!(status.contains("names no field"), "{status}");
    let r = run(
        "",
        &[&[
            ("/mosObj/objSlug", Some("1"), None),
            ("/mosObj/objID", Some("1"), None),
        ]],
    );
    assert!(
        r.list_return_status
            .unwrap_or_default()
            .contains("sortByOrder 1 is objSlug already"),
    );
    // sortType without sortByOrder still sorts.
    let r = run("", &[&[("/mosObj/objID", None, Some("DESCENDING"))]]);
    assert_eq!(ids(&r)[0], "PH-1");
}

// ---------------------------------------------------------------------------------------------
// Paging

fn page(start: Option<u32>, end: Option<u32>) -> MosObjList {
    let sorted: &[F<'_>] = &[("/mosObj/objID", Some("1"), None)];
    search(&objects(), &request("", &[sorted], start, end), SCHEMA)
}

#[test]
fn paging_across_pages() {
    // Sorted by objID: AUD-1 CLIP-1 CLIP-2 CLIP-3 GFX-1 PH-1.
    let p1 = page(Some(1), Some(2));
    assert_eq!(ids(&p1), ["AUD-1", "CLIP-1"]);
    assert_eq!(
        (
            p1.list_return_start,
            p1.list_return_end,
            p1.list_return_total
        ),
        (1, 2, Some(6))
    );
    let p2 = page(Some(3), Some(4));
    assert_eq!(ids(&p2), ["CLIP-2", "CLIP-3"]);
    assert_eq!((p2.list_return_start, p2.list_return_end), (3, 4));
    let p3 = page(Some(5), Some(6));
    assert_eq!(ids(&p3), ["GFX-1", "PH-1"]);
    assert_eq!(p3.list_return_status, None);
    // Asking beyond the end returns what there is.
    let p = page(Some(5), Some(20));
    assert_eq!(ids(&p), ["GFX-1", "PH-1"]);
    assert_eq!(
        (p.list_return_start, p.list_return_end, p.list_return_total),
        (5, 6, Some(6))
    );
    // Empty end = all; 0 end = all; 0 or missing start = 1.
    assert_eq!(page(Some(2), None).objects.len(), 5);
    assert_eq!(page(Some(1), Some(0)).objects.len(), 6);
    let p = page(Some(0), Some(1));
    assert_eq!((p.list_return_start, p.list_return_end), (1, 1));
    assert_eq!(page(None, Some(3)).list_return_end, 3);
    let one = page(Some(4), Some(4));
    assert_eq!(ids(&one), ["CLIP-3"]);
}

#[test]
fn start_past_the_end() {
    let p = page(Some(7), Some(26));
    assert!(p.objects.is_empty());
    assert_eq!(
        (p.list_return_start, p.list_return_end, p.list_return_total),
        (0, 0, Some(6))
    );
    let status = p.list_return_status.unwrap_or_default();
    assert!(
        status.contains("listReturnStart 7 is past the last match"),
        "{status}"
    );
    assert!(status.contains("6 object(s) match"), "{status}");
    let p = page(Some(4), Some(2));
    assert!(p.objects.is_empty());
    assert_eq!(
        (p.list_return_start, p.list_return_end, p.list_return_total),
        (0, 0, Some(6))
    );
    assert!(
        p.list_return_status
            .unwrap_or_default()
            .contains("before listReturnStart 4")
    );
}

#[test]
fn no_match() {
    let r = run("nothing-like-this", &[]);
    assert!(r.objects.is_empty());
    assert_eq!(
        (r.list_return_start, r.list_return_end, r.list_return_total),
        (0, 0, Some(0))
    );
    assert_eq!(r.list_return_status.as_deref(), Some("no objects match"));
    assert_eq!(r.query_id, "q-42");
    // An empty catalogue.
    let r = search(&[], &request("", &[], Some(1), Some(20)), SCHEMA);
    assert_eq!(r.list_return_total, Some(0));
    assert_eq!(r.list_return_status.as_deref(), Some("no objects match"));
}

#[test]
fn query_id_is_echoed_and_the_answer_is_a_valid_message() {
    let wire = format!(
        "<mos><mosID>nmos.gateway.mos</mosID><ncsID>ENPS.NCS</ncsID><messageID>12</messageID>\
         <mosReqObjList><queryID>A7 query</queryID><listReturnStart>1</listReturnStart>\
         <listReturnEnd>2</listReturnEnd><generalSearch>news</generalSearch>\
         <mosSchema>{SCHEMA}</mosSchema><searchGroup>\
         <searchField XPath=\"/mosObj[objType='VIDEO']\" sortByOrder=\"1\" sortType=\"DESCENDING\"/>\
         <searchField XPath=\"/mosObj/objSlug\" sortByOrder=\"2\"/></searchGroup>\
         <searchGroup><searchField XPath=\"/mosObj/objDur[.&lt;300]\"/></searchGroup>\
         </mosReqObjList></mos>"
    );
    let parsed = Mos::parse(&wire, ParseOptions::strict()).unwrap_or_else(|e| panic!("{e}"));
    let Message::MosReqObjList(req) = parsed.mos.message else {
        panic!("not a mosReqObjList")
    };
    let r = search(&objects(), &req, SCHEMA);
    assert_eq!(r.query_id, "A7 query");
    // VIDEO first (descending objType), then by slug (Evening, Fire, Harbour); AUD-1 matches
    // through the second group and comes last.
    assert_eq!(ids(&r), ["CLIP-1", "CLIP-3"]);
    assert_eq!(
        (r.list_return_start, r.list_return_end, r.list_return_total),
        (1, 2, Some(4))
    );
    let reply = Mos::new(
        "nmos.gateway.mos",
        "ENPS.NCS",
        Some("12".into()),
        Message::MosObjList(r.clone()),
    );
    let back =
        Mos::parse(&reply.to_xml(), ParseOptions::strict()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.mos.message, Message::MosObjList(r));
}

#[test]
fn searchable_schema_names_our_url_and_the_xsd_lists_every_field() {
    assert_eq!(searchable_schema(SCHEMA).schema, SCHEMA);
    assert_eq!(searchable_schema("").schema, "");
    let xsd_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dtd/searchable-schema.xsd");
    let xsd = std::fs::read_to_string(&xsd_path).expect("dtd/searchable-schema.xsd");
    for f in Field::ALL {
        assert!(
            xsd.contains(&format!("<xs:element name=\"{}\"", f.name())),
            "{} missing from the XSD",
            f.name()
        );
    }
    assert_eq!(
        xsd.matches("<xs:element name=").count(),
        Field::ALL.len() + 1
    );
}

/// The searchable view of an object: every present field as text.
fn view(o: &MosObj) -> String {
    let mut s = String::from("<mosObj>");
    for f in Field::ALL {
        if let Some(v) = f.value(o) {
            s.push_str(&format!(
                "<{n}>{v}</{n}>",
                n = f.name(),
                v = mos_gateway::mos::xml::escape_text(&v)
            ));
        }
    }
    s.push_str("</mosObj>");
    s
}

#[test]
fn object_views_validate_against_the_xsd_with_xmllint() {
    if Command::new("xmllint").arg("--version").output().is_err() {
        eprintln!("xmllint not installed: XSD validation skipped");
        return;
    }
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("dtd/searchable-schema.xsd");
    let dir = tempfile::tempdir().expect("tempdir");
    for o in objects() {
        let file = dir.path().join(format!("{}.xml", o.id));
        std::fs::write(&file, view(&o)).expect("write");
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .arg(&file)
            .output()
            .expect("xmllint runs");
        assert!(
            out.status.success(),
            "{}: {}",
            o.id,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And a broken view is refused, so the check means something.
    let file = dir.path().join("bad.xml");
    std::fs::write(&file, "<mosObj><objSlug>x</objSlug></mosObj>").expect("write");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("xmllint runs");
    assert!(!out.status.success());
}

// ---------------------------------------------------------------------------------------------
// The catalogue

fn create_req(slug: &str) -> MosObjCreate {
    MosObjCreate {
        slug: slug.into(),
        group: None,
        obj_type: ObjType::Video,
        time_base: Some(50.0),
        duration: Some(1500),
        time: None,
        created_by: None,
        description: None,
        metadata: Vec::new(),
    }
}

#[test]
fn catalogue_events_arrive_in_order_with_revisions() {
    let c = MemoryCatalogue::new();
    let mut rx = c.subscribe();
    let mut a = obj("A", "Alpha", ObjType::Video, None, 10, "");
    a.revision = 77;
    let first = c.upsert(a.clone()).unwrap().expect("a change");
    assert_eq!(first.kind, ChangeKind::New);
    assert_eq!(
        (first.object.revision, first.object.status.as_str()),
        (1, "NEW")
    );
    assert_eq!(
        first.object.created, a.created,
        "a given created time is kept"
    );
    // Same content again: nothing to announce.
    assert!(c.upsert(a.clone()).unwrap().is_none());
    a.slug = "Alpha 2".into();
    a.created = MosTime::from_wire("2030-01-01T00:00:00,000Z");
    let second = c.upsert(a.clone()).unwrap().expect("a change");
    assert_eq!(second.kind, ChangeKind::Updated);
    assert_eq!(
        (second.object.revision, second.object.status.as_str()),
        (2, "UPDATED")
    );
    assert_eq!(
        second.object.created, first.object.created,
        "created is kept"
    );
    let b = c.create(&create_req("Bravo"), "ENPS.NCS").unwrap();
    let gone = c.remove("A").unwrap().expect("removed");
    assert_eq!(
        (gone.kind, gone.object.revision, gone.object.status.as_str()),
        (ChangeKind::Deleted, 3, "DELETED")
    );
    assert!(c.remove("A").unwrap().is_none());
    assert!(c.get("A").is_none());

    let mut seen = Vec::new();
    while let Ok(ch) = rx.try_recv() {
        seen.push((
            ch.kind,
            ch.object.id.clone(),
            ch.object.revision,
            ch.object.slug.clone(),
        ));
    }
    assert_eq!(
        seen,
        [
            (ChangeKind::New, "A".to_owned(), 1, "Alpha".to_owned()),
            (ChangeKind::Updated, "A".to_owned(), 2, "Alpha 2".to_owned()),
            (ChangeKind::New, b.id.clone(), 1, "Bravo".to_owned()),
            (ChangeKind::Deleted, "A".to_owned(), 3, "Alpha 2".to_owned()),
        ]
    );
    assert_eq!(
        c.list().iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        [b.id.as_str()]
    );
}

#[test]
fn revisions_wrap_from_999_to_1() {
    let c = MemoryCatalogue::new();
    let mut a = obj("A", "v0", ObjType::Still, None, 0, "");
    c.upsert(a.clone()).unwrap();
    for i in 1..=998 {
        a.slug = format!("v{i}");
        c.upsert(a.clone()).unwrap();
    }
    assert_eq!(c.get("A").map(|o| o.revision), Some(999));
    a.slug = "wrapped".into();
    let ch = c.upsert(a).unwrap().expect("a change");
    assert_eq!(ch.object.revision, 1);
}

#[test]
fn list_order_is_stable() {
    let c = MemoryCatalogue::open(objects(), Box::new(VolatilePlaceholders), "gw").unwrap();
    let before: Vec<String> = c.list().into_iter().map(|o| o.id).collect();
    let mut changed = obj(
        "CLIP-2",
        "Harbour fire (new cut)",
        ObjType::Video,
        Some("News"),
        2100,
        "",
    );
    changed.air = AirStatus::Ready;
    c.upsert(changed).unwrap();
    c.upsert(obj("NEW-1", "Late addition", ObjType::Video, None, 1, ""))
        .unwrap();
    let after: Vec<String> = c.list().into_iter().map(|o| o.id).collect();
    assert_eq!(&after[..6], &before[..]);
    assert_eq!(after[6], "NEW-1");
}

#[test]
fn placeholder_creation() {
    let c = MemoryCatalogue::new();
    let mut rx = c.subscribe();
    let mut req = create_req("  Remote: Oslo reporter ");
    req.group = Some("Remotes".into());
    req.description = Some(RawXml("<p>Booked for the <em>6pm</em> show</p>".into()));
    req.metadata = vec![MosExternalMetadata {
        scope: None,
        schema: "http://ncs.example/booking".into(),
        payload: RawXml("<slot>18:00</slot>".into()),
    }];
    let o = c.create(&req, "ENPS.NCS").unwrap();
    let uuid = o.id.strip_prefix("PH-").expect("PH- prefix");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{}", o.id);
    assert_eq!(o.slug, "Remote: Oslo reporter");
    assert_eq!(o.group.as_deref(), Some("Remotes"));
    assert_eq!(
        (o.status.as_str(), o.air, o.revision),
        ("NEW", AirStatus::NotReady, 1)
    );
    assert_eq!((o.time_base, o.duration), (50.0, 1500));
    assert_eq!(o.created_by, "ENPS.NCS");
    assert_eq!(o.changed_by, "ENPS.NCS");
    assert!(o.created.to_utc().is_some());
    assert_eq!(o.description, req.description.clone().unwrap_or_default());
    assert_eq!(o.metadata, req.metadata);
    assert!(c.is_placeholder(&o.id));
    assert_eq!(c.get(&o.id), Some(o.clone()));
    let ev = rx.try_recv().expect("New announced");
    assert_eq!((ev.kind, ev.object), (ChangeKind::New, o.clone()));

    // createdBy from the request wins; two creations get distinct objIDs.
    let mut named = create_req("Second");
    named.created_by = Some("jane".into());
    named.duration = None;
    let p = c.create(&named, "ENPS.NCS").unwrap();
    assert_eq!((p.created_by.as_str(), p.duration), ("jane", 0));
    assert_ne!(p.id, o.id);
}

#[test]
fn placeholder_creation_errors() {
    let c = MemoryCatalogue::open(objects(), Box::new(VolatilePlaceholders), "gw").unwrap();
    let mut rx = c.subscribe();
    let cases: Vec<(MosObjCreate, &str)> = vec![
        (create_req(""), "objSlug is empty"),
        (create_req("   "), "objSlug is empty"),
        (
            create_req(&"x".repeat(129)),
            "129 characters long; use at most 128",
        ),
        (
            MosObjCreate {
                group: Some("g".repeat(200)),
                ..create_req("ok")
            },
            "objGroup is 200 characters",
        ),
        (
            MosObjCreate {
                time_base: None,
                ..create_req("ok")
            },
            "objTB is missing",
        ),
        (
            MosObjCreate {
                time_base: Some(0.0),
                ..create_req("ok")
            },
            "objTB 0 is not valid",
        ),
        (
            MosObjCreate {
                time_base: Some(-25.0),
                ..create_req("ok")
            },
            "objTB -25 is not valid",
        ),
        (
            MosObjCreate {
                time_base: Some(f64::NAN),
                ..create_req("ok")
            },
            "is not valid",
        ),
        (
            MosObjCreate {
                obj_type: ObjType::Other,
                ..create_req("ok")
            },
            "objType OTHER cannot be created here; use VIDEO, AUDIO or STILL",
        ),
        (
            MosObjCreate {
                group: Some("news".into()),
                ..create_req("harbour FIRE")
            },
            "already exists in group \"news\" (CLIP-2)",
        ),
        (
            create_req("Weather Map"),
            "already exists in no group (GFX-1)",
        ),
    ];
    for (req, fragment) in cases {
        let e = match c.create(&req, "N") {
            Ok(o) => panic!("created {o:?}"),
            Err(e) => e,
        };
        let reason = e.reason();
        assert!(reason.contains(fragment), "{reason:?} lacks {fragment:?}");
        assert!(reason.chars().count() <= 128, "{reason}");
    }
    assert_eq!(c.len(), 6, "nothing was added");
    assert!(rx.try_recv().is_err(), "nothing was announced");
    // The same slug in another group is fine.
    let ok = MosObjCreate {
        group: Some("Remotes".into()),
        ..create_req("Harbour fire")
    };
    assert!(c.create(&ok, "N").is_ok());
}

#[test]
fn a_mos_obj_create_from_the_wire_becomes_a_placeholder() {
    let wire = "<mos><mosID>nmos.gateway.mos</mosID><ncsID>ENPS.NCS</ncsID><messageID>13</messageID>\
        <mosObjCreate><objSlug>New clip</objSlug><objType>VIDEO</objType><objTB>50</objTB>\
        <objDur>1500</objDur><description>For the <em>late</em> news</description></mosObjCreate></mos>";
    let parsed = Mos::parse(wire, ParseOptions::strict()).unwrap_or_else(|e| panic!("{e}"));
    let Message::MosObjCreate(req) = parsed.mos.message else {
        panic!("not a mosObjCreate")
    };
    let c = MemoryCatalogue::new();
    let o = c.create(&req, &parsed.mos.ncs_id).unwrap();
    assert_eq!(o.description.as_str(), "For the <em>late</em> news");
    let found = search(&c.list(), &request("late news", &[], Some(1), None), SCHEMA);
    assert_eq!(ids(&found), [o.id.as_str()]);
}

/// A store that fails every write.
struct Broken;

impl PlaceholderStore for Broken {
    fn load(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }
    fn put(&mut self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(StoreError::DataDir {
            path: "/nowhere".into(),
            source: std::io::Error::other("disk full"),
        })
    }
    fn delete(&mut self, obj_id: &str) -> Result<(), StoreError> {
        self.put(obj_id, "")
    }
}

#[test]
fn a_storage_failure_refuses_the_creation() {
    let c = MemoryCatalogue::open(Vec::new(), Box::new(Broken), "gw").unwrap();
    let mut rx = c.subscribe();
    let e = c.create(&create_req("Oslo"), "N").expect_err("refused");
    assert!(matches!(e, CreateError::Storage(_)));
    assert!(e.reason().contains("could not store"), "{}", e.reason());
    assert!(c.is_empty());
    assert!(rx.try_recv().is_err());
}

#[test]
fn placeholders_survive_reopening_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kept, bound_id, gone) = {
        let store = Store::open(dir.path()).expect("store");
        let c = MemoryCatalogue::open(objects(), Box::new(store), "gw").unwrap();
        let mut req = create_req("Remote: Stavanger");
        req.description = Some(RawXml("<p>Oslo &amp; Bergen</p>".into()));
        let kept = c.create(&req, "ENPS.NCS").unwrap();
        let bound = c.create(&create_req("Remote: Bergen"), "ENPS.NCS").unwrap();
        let gone = c.create(&create_req("Cancelled"), "ENPS.NCS").unwrap();
        // An operator binds one to a source: READY, revision 2, stored again.
        let mut b = bound.clone();
        b.air = AirStatus::Ready;
        c.upsert(b).unwrap();
        c.remove(&gone.id).unwrap();
        // Objects that are not placeholders are not stored.
        c.upsert(obj("NMOS-1", "Camera 1", ObjType::Video, None, 0, ""))
            .unwrap();
        (kept, bound.id, gone.id)
    };
    let store = Store::open(dir.path()).expect("store reopens");
    let c = MemoryCatalogue::open(Vec::new(), Box::new(store), "gw").unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c.get(&kept.id), Some(kept.clone()));
    assert!(c.is_placeholder(&kept.id));
    let bound = c.get(&bound_id).expect("bound placeholder");
    assert_eq!(
        (bound.air, bound.revision, bound.status.as_str()),
        (AirStatus::Ready, 2, "UPDATED")
    );
    assert!(c.get(&gone).is_none());
    assert!(c.get("NMOS-1").is_none());
    assert!(c.get("CLIP-1").is_none());
}

#[test]
fn configured_objects_load_into_the_catalogue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "[mos]\nid = \"gw.mos\"\n\n\
        [[object]]\nid = \"CLIP-1\"\nslug = \"Clip one\"\ntype = \"VIDEO\"\ngroup = \"Clips\"\n\
        description = \"Fish & chips <b>\"\nduration_s = 12.5\n\n\
        [[object]]\nid = \"STILL-1\"\nslug = \"Logo\"\ntype = \"STILL\"\n";
    let config = Config::from_toml_str(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    {
        let store = Store::open(dir.path()).expect("store");
        let c = MemoryCatalogue::from_config(&config, Box::new(store)).unwrap();
        c.create(&create_req("Booked"), "N").unwrap();
    }
    let store = Store::open(dir.path()).expect("store");
    let c = MemoryCatalogue::from_config(&config, Box::new(store)).unwrap();
    let all = c.list();
    assert_eq!(
        all.iter().map(|o| o.slug.as_str()).collect::<Vec<_>>(),
        ["Clip one", "Logo", "Booked"]
    );
    let clip = &all[0];
    assert_eq!(clip.id, "CLIP-1");
    assert_eq!(clip.obj_type, ObjType::Video);
    assert_eq!(clip.group.as_deref(), Some("Clips"));
    assert_eq!((clip.time_base, clip.duration), (1000.0, 12500));
    assert_eq!(
        (clip.air, clip.status.as_str(), clip.revision),
        (AirStatus::Ready, "NEW", 1)
    );
    assert_eq!(
        (clip.created_by.as_str(), clip.changed_by.as_str()),
        ("gw.mos", "gw.mos")
    );
    assert_eq!(clip.description.as_str(), "Fish &amp; chips &lt;b&gt;");
    let logo = &all[1];
    assert_eq!((logo.group.as_deref(), logo.duration), (None, 0));
    assert!(!c.is_placeholder("CLIP-1"));
    // Searchable straight away.
    let r = search(&all, &request("chips", &[], Some(1), None), SCHEMA);
    assert_eq!(ids(&r), ["CLIP-1"]);
}

#[test]
fn the_shipped_configurations_declare_objects_and_a_schema_url() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let gateway = Config::load(Some(&root.join("gateway.toml"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gateway.mos.searchable_schema_url, SCHEMA);
    let clip = gateway.object("CLIP-1").expect("CLIP-1 declared");
    assert_eq!(
        (clip.slug.as_str(), clip.obj_type),
        ("Clip one", ObjType::Video)
    );
    assert_eq!(clip.duration_samples(), 12500);
    assert!(gateway.objects.len() >= 2);
    let lab = Config::load(Some(&root.join("lab.toml"))).unwrap_or_else(|e| panic!("{e}"));
    assert!(lab.objects.len() >= 2);
    let c = MemoryCatalogue::from_config(&lab, Box::new(VolatilePlaceholders)).unwrap();
    assert_eq!(c.len(), lab.objects.len());
}
