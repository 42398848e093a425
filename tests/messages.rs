//! The message layer through its public API: inline cases for the rules the examples
//! corpus does not pin down on its own.

use mos_gateway::mos::messages::*;
use mos_gateway::mos::{DeviationKind, Message, Mos, ParseOptions};

fn lenient(xml: &str) -> (Mos, Vec<DeviationKind>) {
    let p = Mos::parse(xml, ParseOptions::lenient()).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    (p.mos, p.deviations.iter().map(|d| d.kind).collect())
}

const ENV: &str = "<mosID>nmos.gateway.mos</mosID><ncsID>ENPS.NCS</ncsID><messageID>7</messageID>";

#[test]
fn header_fields_are_read_by_name_in_any_order() {
    let xml = "<mos><messageID>5</messageID><ncsID>N</ncsID><mosID>M</mosID><heartbeat><time>2026-11-25T18:00:00,000Z</time></heartbeat></mos>";
    let (m, dev) = lenient(xml);
    assert_eq!(
        (
            m.mos_id.as_str(),
            m.ncs_id.as_str(),
            m.message_id.as_deref()
        ),
        ("M", "N", Some("5"))
    );
    assert_eq!(dev, [DeviationKind::OutOfOrder]);
    let e = Mos::parse(xml, ParseOptions::strict()).unwrap_err();
    assert!(e.error.to_string().contains("mosID"), "{e}");
    assert_eq!(e.envelope.unwrap().message_id.as_deref(), Some("5"));
}

#[test]
fn unknown_tags_are_ignored_and_unknown_messages_named() {
    let xml = format!(
        "<mos>{ENV}<vendorTag>x</vendorTag><roDelete><roID>R</roID><extra/></roDelete></mos>"
    );
    let (m, dev) = lenient(&xml);
    assert!(dev.is_empty(), "{dev:?}");
    assert_eq!(m.message, Message::RoDelete(RoDelete { ro_id: "R".into() }));
    let xml = format!("<mos>{ENV}<octext_roStorySkip><roID>R</roID></octext_roStorySkip></mos>");
    assert_eq!(lenient(&xml).0.message.name(), "octext_roStorySkip");
}

#[test]
fn mixed_element_source_is_refused_with_the_path() {
    let xml = format!(
        "<mos>{ENV}<roElementAction operation=\"DELETE\"><roID>R</roID><element_source><storyID>S1</storyID><itemID>2</itemID></element_source></roElementAction></mos>"
    );
    let e = Mos::parse(&xml, ParseOptions::lenient()).unwrap_err();
    let reason = e.error.reason();
    assert!(
        reason.starts_with("roElementAction: mos/roElementAction/element_source: mixes"),
        "{reason}"
    );
    assert!(reason.chars().count() <= 128);
}

#[test]
fn payload_is_kept_verbatim_and_written_back() {
    let payload = "<a  x='1'>t&#160;&amp;<b/><![CDATA[<c>]]></a> text";
    let xml = format!(
        "<mos>{ENV}<roCreate><roID>R</roID><roSlug>S</roSlug><mosExternalMetadata><mosScope>PLAYLIST</mosScope><mosSchema>http://x/s</mosSchema><mosPayload>{payload}</mosPayload></mosExternalMetadata></roCreate></mos>"
    );
    let (m, _) = lenient(&xml);
    let Message::RoCreate(RoCreate(ro)) = &m.message else {
        panic!()
    };
    assert_eq!(ro.header.metadata[0].payload.as_str(), payload);
    assert!(m.to_xml().contains(payload));
}

#[test]
fn missing_message_id_is_tolerated_and_not_invented() {
    let xml = "<mos><mosID>M</mosID><ncsID>N</ncsID><reqMachInfo/></mos>";
    let (m, dev) = lenient(xml);
    assert_eq!(dev, [DeviationKind::MissingMessageId]);
    assert_eq!(m.message_id, None);
    assert!(!m.to_xml().contains("messageID"));
    assert!(Mos::parse(xml, ParseOptions::strict()).is_err());
}

#[test]
fn item_fields_are_read_in_any_order_with_one_order_deviation() {
    // Two children out of spec order: one deviation (at the first), every field still read,
    // and the first of a repeated element wins.
    let item = "<item><objID>O</objID><itemID>1</itemID><mosID>M</mosID><itemEdDur>5</itemEdDur>\
                <itemSlug>s</itemSlug><itemSlug>t</itemSlug><itemChannel>C</itemChannel></item>";
    let xml = format!(
        "<mos>{ENV}<roCreate><roID>R</roID><roSlug>S</roSlug><story><storyID>S1</storyID>{item}</story></roCreate></mos>"
    );
    let p = Mos::parse(&xml, ParseOptions::lenient()).unwrap();
    let kinds: Vec<_> = p.deviations.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [DeviationKind::OutOfOrder]);
    assert_eq!(p.deviations[0].path, "mos/roCreate/story[1]/item[1]");
    assert!(
        p.deviations[0]
            .detail
            .starts_with("<itemID> after <objID>; expected order (itemID, "),
        "{}",
        p.deviations[0].detail
    );
    let Message::RoCreate(RoCreate(ro)) = p.mos.message else {
        panic!("not a roCreate");
    };
    let it = &ro.stories[0].items[0];
    assert_eq!(
        (it.id.as_str(), it.object_id.as_str(), it.mos_id.as_str()),
        ("1", "O", "M")
    );
    assert_eq!(
        (it.slug.as_deref(), it.channel.as_deref(), it.ed_dur),
        (Some("s"), Some("C"), Some(5))
    );
    let e = Mos::parse(&xml, ParseOptions::strict()).unwrap_err();
    assert_eq!(e.error.path, "mos/roCreate/story[1]/item[1]");
}
