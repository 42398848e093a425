//! Unit tests of the DTD reader and of internal helpers.

use super::*;

const SMALL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<!ELEMENT list (head, (item | note)+, tail?)>
<!ELEMENT head (#PCDATA)>
<!ELEMENT item (#PCDATA | b | i)*>
<!ELEMENT note EMPTY>
<!ELEMENT tail ANY>
<!ELEMENT b (#PCDATA)>
<!ELEMENT i (#PCDATA)>
<!ATTLIST item
    id     ID                 #REQUIRED
    kind   (A | B | NOT-READY) "A"
    ver    CDATA              #FIXED "2.8.1"
    tok    NMTOKEN            #IMPLIED>
"#;

#[test]
fn parses_representative_dtd() {
    let dtd = Dtd::parse(SMALL).unwrap();
    let mut names: Vec<&str> = dtd.element_names().collect();
    names.sort_unstable();
    assert_eq!(names, ["b", "head", "i", "item", "list", "note", "tail"]);
    assert_eq!(
        dtd.content_model("list").unwrap(),
        "(head, (item | note)+, tail?)"
    );
    assert_eq!(dtd.content_model("item").unwrap(), "(#PCDATA | b | i)*");
    assert_eq!(dtd.content_model("head").unwrap(), "(#PCDATA)");
    assert_eq!(dtd.content_model("note").unwrap(), "EMPTY");
    assert_eq!(dtd.content_model("tail").unwrap(), "ANY");
    assert!(dtd.declares("item"));
    assert!(!dtd.declares("nope"));
    let attrs = &dtd.attlists[dtd.index["item"] as usize];
    assert_eq!(attrs.len(), 4);
    assert!(matches!(&attrs[1].ty, AttrType::Enum(t) if t.len() == 3));
    assert!(matches!(&attrs[2].default, AttrDefault::Fixed(v) if v == "2.8.1"));
}

#[test]
fn whitespace_anywhere() {
    let dtd = Dtd::parse("\n\n<!ELEMENT\ta\n(\n b \n,\n c* \n)\n>\n<!ELEMENT b EMPTY ><!ELEMENT c (#PCDATA\n)>\n<!ATTLIST\nb\nx\n(\np\n|\nq\n)\n#IMPLIED\n>")
        .unwrap();
    assert_eq!(dtd.content_model("a").unwrap(), "(b, c*)");
    assert_eq!(dtd.content_model("c").unwrap(), "(#PCDATA)");
}

fn err(text: &str) -> DtdError {
    Dtd::parse(text).unwrap_err()
}

#[test]
fn rejects_unsupported_constructs_with_line() {
    let e = err("<!ELEMENT a EMPTY>\n<!ENTITY % p \"x\">");
    assert!(matches!(e, DtdError::Unsupported { line: 2, .. }), "{e}");
    let e = err("<!ELEMENT a EMPTY>\n\n<![INCLUDE[ <!ELEMENT b EMPTY> ]]>");
    assert!(matches!(e, DtdError::Unsupported { line: 3, .. }), "{e}");
    let e = err("<!ELEMENT a (%p;)>");
    assert!(e.to_string().contains("parameter entity"), "{e}");
    let e = err("<!ELEMENT a EMPTY>\n<!ATTLIST a r IDREF #IMPLIED>");
    assert!(matches!(e, DtdError::Unsupported { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("IDREF"), "{e}");
    let e = err("<!ELEMENT a EMPTY>\n<!ATTLIST a r NMTOKENS #IMPLIED>");
    assert!(e.to_string().contains("NMTOKENS"), "{e}");
}

#[test]
fn rejects_duplicate_element() {
    let e = err("<!ELEMENT a EMPTY>\n<!-- c -->\n<!ELEMENT a ANY>");
    assert_eq!(
        e,
        DtdError::DuplicateElement {
            line: 3,
            name: "a".into(),
            first: 1
        }
    );
    assert_eq!(e.line(), 3);
}

#[test]
fn rejects_bad_syntax_naming_what_was_found() {
    let e = err("<!ELEMENT a (b, c | d)>");
    assert!(e.to_string().contains("same separator"), "{e}");
    let e = err("<!ELEMENT a (#PCDATA | b)>");
    assert!(e.to_string().contains("'*'"), "{e}");
    let e = err("<!ELEMENT a (b, (#PCDATA))>");
    assert!(e.to_string().contains("#PCDATA"), "{e}");
    let e = err("<!ELEMENT a b>");
    assert!(e.to_string().contains("found \"b>\""), "{e}");
    let e = err("<!ELEMENT a EMPTY>\n<!ATTLIST a s (A | B | NOT READY) #IMPLIED>");
    assert_eq!(e.line(), 2);
    assert!(e.to_string().contains("READY"), "{e}");
    let e = err("<!ATTLIST a s (A | B | READY?) #IMPLIED>");
    assert!(e.to_string().contains('?'), "{e}");
    let e = err("<!ATTLIST a s (A | B) \"C\">");
    assert!(e.to_string().contains("enumerated"), "{e}");
    let e = err("<!ELEMENT a EMPTY");
    assert!(e.to_string().contains("end of input"), "{e}");
    let e = err("<!-- never closed");
    assert!(e.to_string().contains("-->"), "{e}");
    let e = err("hello");
    assert!(e.to_string().contains("\"hello\""), "{e}");
    let e = err("<!ATTLIST a x CDATA #FIXED>");
    assert!(e.to_string().contains("white space"), "{e}");
    let e = err("<!ATTLIST a x CDATA \"&foo;\">");
    assert!(e.to_string().contains("undefined entity"), "{e}");
}

#[test]
fn rejects_nondeterministic_models() {
    let e = err("<!ELEMENT x EMPTY>\n<!ELEMENT a ((b, c) | (b, d))>");
    assert_eq!(e.line(), 2);
    assert!(e.to_string().contains("not deterministic"), "{e}");
    assert!(e.to_string().contains("<b>"), "{e}");
    assert!(
        err("<!ELEMENT a (b?, b)>")
            .to_string()
            .contains("deterministic")
    );
    assert!(Dtd::parse("<!ELEMENT a ((b, c) | (d, b))*>").is_ok());
}

#[test]
fn rejects_hostile_nesting_in_dtd() {
    let deep = format!("<!ELEMENT a {}b{}>", "(".repeat(10_000), ")".repeat(10_000));
    assert!(matches!(err(&deep), DtdError::Unsupported { .. }));
}

#[test]
fn attribute_value_normalisation() {
    assert_eq!(expand_attr_value(" a\tb\r\nc ").unwrap(), " a b c ");
    assert_eq!(expand_attr_value("  a   b ").unwrap(), "  a   b ");
    assert_eq!(expand_attr_value("&lt;&#65;&#x42;&amp;").unwrap(), "<AB&");
    assert!(expand_attr_value("a<b").is_err());
    assert!(expand_attr_value("&nbsp;").is_err());
    assert!(expand_attr_value("&#0;").is_err());
    assert!(expand_attr_value("&#xD800;").is_err());
    assert!(expand_attr_value("a & b").is_err());
}

#[test]
fn placeholder_or_real_mos_dtd_parses() {
    let dtd = Dtd::mos_2_8_1();
    assert!(dtd.declares("mos"));
}
