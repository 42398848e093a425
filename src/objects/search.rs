//! mosReqObjList → mosObjList: a pure function of the objects and the request.
//!
//! # generalSearch
//! Free text, compared without regard to case, over objID, objSlug, objGroup, objType and the
//! description's text (markup removed). A word matches an object when one of those fields
//! contains it (`news` matches "Evening News"). Words are ANDed; `and`, `or` and `not` (in any
//! case) are operators, `not` binding tightest and `or` loosest; parentheses group;
//! `"a quoted phrase"` matches those words together in that order (spaces between them are
//! compared as one space). Misplaced operators and unbalanced parentheses are ignored rather
//! than refused. An empty generalSearch matches every object.
//!
//! # searchGroups
//! Each searchField's XPath is a condition over one object (the subset and the searchable
//! schema are described in [`super::xpath`]). Fields of a group are ANDed, groups are ORed, and
//! the result is ANDed with generalSearch; a group without fields is ignored. An XPath outside
//! the subset answers no objects, with listReturnStatus saying what is unsupported. A mosSchema
//! other than ours is noted in listReturnStatus; the fields are still read against our schema.
//!
//! # Sorting
//! A searchField with sortByOrder sorts by the field its XPath is about (see
//! [`super::xpath::XPath::sort_field`]); 1 is the primary key, then 2, ... A field with a
//! sortType but no sortByOrder sorts after the numbered ones. sortType DESCENDING (any case,
//! also DESC) sorts down, anything else up. Text sorts without regard to case, objTB/objRev/
//! objDur as numbers, created/changed as instants. Objects without the field (objGroup,
//! mosAbstract) come after the others when ascending. Ties, and requests without sorting, keep
//! the catalogue's order. The same field repeated with the same sortByOrder (one per group) is
//! one key; another field on a taken sortByOrder is ignored with a note.
//!
//! # Paging
//! listReturnStart is 1-based (0 or missing is read as 1); listReturnEnd empty (or 0) means up
//! to the last match. The answer's listReturnTotal is the number of matches, and its
//! listReturnStart/listReturnEnd what is actually returned: 0 and 0 when nothing is (no match,
//! start past the last match, or end before start, each explained in listReturnStatus).
//! queryID is echoed; nothing is cached (the search is cheap and the catalogue may change).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use super::xpath::{Field, FieldKind, XPath};
use crate::mos::messages::{MosListSearchableSchema, MosObjList, MosReqObjList};
use crate::mos::read::clip128;
use crate::mos::structures::MosObj;
use crate::mos::xml::{Document, El, XmlNode};

/// listReturnStatus when nothing matches.
pub const NO_MATCH: &str = "no objects match";

/// Deepest parenthesis nesting of generalSearch honoured (deeper parentheses are ignored).
const MAX_DEPTH: usize = 32;

/// The mosListSearchableSchema reply: our schema URL (empty = field search not offered).
pub fn searchable_schema(schema_url: &str) -> MosListSearchableSchema {
    MosListSearchableSchema {
        username: None,
        schema: schema_url.to_owned(),
    }
}

/// The text of XML content without markup: `p` and `tab` become spaces, entities are
/// resolved, runs of white space become one space.
pub(crate) fn markup_text(raw: &str) -> String {
    let wrapped = format!("<d>{raw}</d>");
    let mut out = String::with_capacity(raw.len());
    match Document::parse(&wrapped) {
        Ok(doc) => collect_text(doc.root(), &mut out),
        Err(_) => {
            // Not well-formed: drop anything between < and >.
            let mut in_tag = false;
            for c in raw.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' if in_tag => {
                        in_tag = false;
                        out.push(' ');
                    }
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn collect_text(el: El<'_, '_>, out: &mut String) {
    for n in el.nodes() {
        match n {
            XmlNode::Text(t) => out.push_str(t),
            XmlNode::Element(c) => {
                out.push(' ');
                collect_text(c, out);
                out.push(' ');
            }
        }
    }
}

/// An object's description as plain text (markup removed, white space collapsed).
pub fn description_text(obj: &MosObj) -> String {
    markup_text(obj.description.as_str())
}

// ---------------------------------------------------------------------------------------------
// generalSearch

#[derive(Debug, Clone, PartialEq)]
enum Word {
    Term(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<Word>| {
        if current.is_empty() {
            return;
        }
        let w = std::mem::take(current);
        out.push(match w.to_lowercase().as_str() {
            "and" => Word::And,
            "or" => Word::Or,
            "not" => Word::Not,
            _ => Word::Term(normalize(&w)),
        });
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                flush(&mut current, &mut out);
                let mut phrase = String::new();
                for p in chars.by_ref() {
                    if p == '"' {
                        break;
                    }
                    phrase.push(p);
                }
                let phrase = normalize(&phrase);
                if !phrase.is_empty() {
                    out.push(Word::Term(phrase));
                }
            }
            '(' => {
                flush(&mut current, &mut out);
                out.push(Word::Open);
            }
            ')' => {
                flush(&mut current, &mut out);
                out.push(Word::Close);
            }
            c if c.is_whitespace() => flush(&mut current, &mut out),
            c => current.push(c),
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Lower case, white space runs as one space.
fn normalize(text: &str) -> String {
    text.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A parsed generalSearch.
#[derive(Debug, Clone, PartialEq)]
enum Query {
    Term(String),
    Not(Box<Query>),
    And(Vec<Query>),
    Or(Vec<Query>),
}

impl Query {
    fn matches(&self, haystacks: &[String]) -> bool {
        match self {
            Query::Term(t) => haystacks.iter().any(|h| h.contains(t.as_str())),
            Query::Not(q) => !q.matches(haystacks),
            Query::And(qs) => qs.iter().all(|q| q.matches(haystacks)),
            Query::Or(qs) => qs.is_empty() || qs.iter().any(|q| q.matches(haystacks)),
        }
    }
}

struct QueryParser {
    words: Vec<Word>,
    pos: usize,
    depth: usize,
}

impl QueryParser {
    fn peek(&self) -> Option<&Word> {
        self.words.get(self.pos)
    }

    fn or(&mut self) -> Query {
        let mut alternatives = vec![self.and()];
        while self.peek() == Some(&Word::Or) {
            self.pos += 1;
            alternatives.push(self.and());
        }
        // Dangling operators give empty conjunctions, which would match everything.
        alternatives.retain(|q| !matches!(q, Query::And(v) if v.is_empty()));
        match alternatives.len() {
            0 => Query::And(Vec::new()),
            1 => alternatives.remove(0),
            _ => Query::Or(alternatives),
        }
    }

    fn and(&mut self) -> Query {
        let mut parts = Vec::new();
        loop {
            match self.peek() {
                None | Some(Word::Or | Word::Close) => break,
                Some(Word::And) => self.pos += 1,
                Some(_) => {
                    if let Some(q) = self.unary() {
                        parts.push(q);
                    }
                }
            }
        }
        if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::And(parts)
        }
    }

    fn unary(&mut self) -> Option<Query> {
        match self.peek()?.clone() {
            Word::Not => {
                // Counted rather than recursed: `not not not …` cannot exhaust the stack.
                let mut negations = 0usize;
                while self.peek() == Some(&Word::Not) {
                    self.pos += 1;
                    negations += 1;
                }
                match self.peek() {
                    Some(Word::Term(_) | Word::Open) => self.unary().map(|q| {
                        if negations % 2 == 1 {
                            Query::Not(Box::new(q))
                        } else {
                            q
                        }
                    }),
                    _ => None,
                }
            }
            Word::Open => {
                self.pos += 1;
                if self.depth >= MAX_DEPTH {
                    return None;
                }
                self.depth += 1;
                let q = self.or();
                self.depth -= 1;
                if self.peek() == Some(&Word::Close) {
                    self.pos += 1;
                }
                Some(q)
            }
            Word::Term(t) => {
                self.pos += 1;
                Some(Query::Term(t))
            }
            Word::And | Word::Or | Word::Close => {
                self.pos += 1;
                None
            }
        }
    }
}

fn parse_query(text: &str) -> Query {
    let mut p = QueryParser {
        words: words(text),
        pos: 0,
        depth: 0,
    };
    let mut parts = vec![p.or()];
    while p.pos < p.words.len() {
        // A stray ')': skip it and go on.
        p.pos += 1;
        parts.push(p.or());
    }
    parts.retain(|q| !matches!(q, Query::And(v) if v.is_empty()));
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Query::And(parts)
    }
}

/// The texts generalSearch looks in, normalised.
fn haystacks(obj: &MosObj) -> Vec<String> {
    let mut v = vec![
        normalize(&obj.id),
        normalize(&obj.slug),
        normalize(obj.obj_type.as_wire()),
        normalize(&description_text(obj)),
    ];
    if let Some(g) = &obj.group {
        v.push(normalize(g));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Sorting

#[derive(Debug, Clone, Copy)]
struct SortKey {
    field: Field,
    descending: bool,
}

#[derive(Debug, Clone)]
enum KeyValue {
    Missing,
    Text(String, String),
    Number(f64),
    Time(Option<DateTime<Utc>>, String),
}

fn key_value(obj: &MosObj, field: Field) -> KeyValue {
    match field.kind() {
        FieldKind::Number => match field {
            Field::ObjTb => KeyValue::Number(obj.time_base),
            Field::ObjRev => KeyValue::Number(f64::from(obj.revision)),
            _ => KeyValue::Number(f64::from(obj.duration)),
        },
        FieldKind::Time => {
            let t = if field == Field::Created {
                &obj.created
            } else {
                &obj.changed
            };
            KeyValue::Time(t.to_utc(), t.as_wire().to_owned())
        }
        FieldKind::Text => match field.value(obj) {
            Some(v) => KeyValue::Text(v.to_lowercase(), v),
            None => KeyValue::Missing,
        },
    }
}

/// Ascending order of two values of one field; missing values last.
fn compare_values(a: &KeyValue, b: &KeyValue) -> Ordering {
    match (a, b) {
        (KeyValue::Missing, KeyValue::Missing) => Ordering::Equal,
        (KeyValue::Missing, _) => Ordering::Greater,
        (_, KeyValue::Missing) => Ordering::Less,
        (KeyValue::Text(la, a), KeyValue::Text(lb, b)) => la.cmp(lb).then_with(|| a.cmp(b)),
        (KeyValue::Number(a), KeyValue::Number(b)) => a.total_cmp(b),
        (KeyValue::Time(ta, a), KeyValue::Time(tb, b)) => match (ta, tb) {
            (Some(x), Some(y)) => x.cmp(y).then_with(|| a.cmp(b)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => a.cmp(b),
        },
        _ => Ordering::Equal,
    }
}

fn is_descending(sort_type: Option<&str>) -> bool {
    sort_type.is_some_and(|t| t.trim().to_ascii_uppercase().starts_with("DESC"))
}

/// The sort keys of a request, in priority order, and notes about ignored ones.
fn sort_keys(
    request: &MosReqObjList,
    parsed: &[Vec<XPath>],
    notes: &mut Vec<String>,
) -> Vec<SortKey> {
    let mut numbered: Vec<(u32, SortKey)> = Vec::new();
    let mut unnumbered: Vec<SortKey> = Vec::new();
    for (group, xpaths) in request.groups.iter().zip(parsed) {
        for (field, xpath) in group.fields.iter().zip(xpaths) {
            let descending = is_descending(field.sort_type.as_deref());
            let order = match field.sort_by_order.as_deref().map(str::trim) {
                None | Some("") if field.sort_type.is_none() => continue,
                None | Some("") => None,
                Some(o) => match o.parse::<u32>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        notes.push(format!("sortByOrder \"{o}\" is not a number; ignored"));
                        continue;
                    }
                },
            };
            let Some(sort_field) = xpath.sort_field() else {
                notes.push("a sort was ignored: its XPath names no field".to_owned());
                continue;
            };
            let key = SortKey {
                field: sort_field,
                descending,
            };
            match order {
                Some(n) => match numbered.iter().find(|(m, _)| *m == n) {
                    Some((_, k)) if k.field == sort_field => {}
                    Some((_, k)) => notes.push(format!(
                        "sortByOrder {n} is {} already; {} ignored",
                        k.field.name(),
                        sort_field.name()
                    )),
                    None => numbered.push((n, key)),
                },
                None => {
                    if !unnumbered.iter().any(|k| k.field == sort_field) {
                        unnumbered.push(key);
                    }
                }
            }
        }
    }
    numbered.sort_by_key(|(n, _)| *n);
    let mut keys: Vec<SortKey> = numbered.into_iter().map(|(_, k)| k).collect();
    for k in unnumbered {
        if !keys.iter().any(|x| x.field == k.field) {
            keys.push(k);
        }
    }
    keys
}

// ---------------------------------------------------------------------------------------------
// The search

fn status(parts: &[String]) -> Option<String> {
    if parts.is_empty() {
        None
    } else {
        Some(clip128(&parts.join("; ")))
    }
}

fn answer(
    request: &MosReqObjList,
    start: u32,
    end: u32,
    total: u32,
    status_parts: &[String],
    objects: Vec<MosObj>,
) -> MosObjList {
    MosObjList {
        username: None,
        query_id: request.query_id.clone(),
        list_return_start: start,
        list_return_end: end,
        list_return_total: Some(total),
        list_return_status: status(status_parts),
        objects,
    }
}

/// Answers a mosReqObjList from `objects` (in catalogue order). `schema_url` is our
/// searchable schema (`mos.searchable_schema_url`). See the module documentation for the
/// semantics. Never fails: problems are reported in listReturnStatus.
pub fn search(objects: &[MosObj], request: &MosReqObjList, schema_url: &str) -> MosObjList {
    let mut notes: Vec<String> = Vec::new();

    // Parse every XPath first: one outside the subset answers nothing.
    let mut parsed: Vec<Vec<XPath>> = Vec::with_capacity(request.groups.len());
    for group in &request.groups {
        let mut xpaths = Vec::with_capacity(group.fields.len());
        for field in &group.fields {
            match XPath::parse(&field.xpath) {
                Ok(x) => xpaths.push(x),
                Err(e) => {
                    let shown: String = field.xpath.chars().take(40).collect();
                    let message = format!("unsupported XPath: {e} (in \"{shown}\")");
                    return answer(request, 0, 0, 0, &[message], Vec::new());
                }
            }
        }
        parsed.push(xpaths);
    }
    let their_schema = request.schema.trim();
    if !request.groups.is_empty()
        && !their_schema.is_empty()
        && !schema_url.is_empty()
        && their_schema != schema_url
    {
        notes.push(format!(
            "mosSchema \"{their_schema}\" is not ours; fields read as in {schema_url}"
        ));
    }

    let query = parse_query(&request.general_search);
    let groups: Vec<&Vec<XPath>> = parsed.iter().filter(|g| !g.is_empty()).collect();
    let mut matched: Vec<&MosObj> = objects
        .iter()
        .filter(|o| {
            (groups.is_empty() || groups.iter().any(|g| g.iter().all(|x| x.matches(o))))
                && query.matches(&haystacks(o))
        })
        .collect();

    let keys = sort_keys(request, &parsed, &mut notes);
    if !keys.is_empty() {
        let mut keyed: Vec<(Vec<KeyValue>, &MosObj)> = matched
            .into_iter()
            .map(|o| (keys.iter().map(|k| key_value(o, k.field)).collect(), o))
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for ((x, y), k) in a.iter().zip(b).zip(&keys) {
                let o = compare_values(x, y);
                let o = if k.descending { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        matched = keyed.into_iter().map(|(_, o)| o).collect();
    }

    let total = u32::try_from(matched.len()).unwrap_or(u32::MAX);
    if total == 0 {
        let mut parts = vec![NO_MATCH.to_owned()];
        parts.extend(notes);
        return answer(request, 0, 0, 0, &parts, Vec::new());
    }
    let start = request.list_return_start.unwrap_or(1).max(1);
    if start > total {
        let mut parts = vec![format!(
            "listReturnStart {start} is past the last match; {total} object(s) match"
        )];
        parts.extend(notes);
        return answer(request, 0, 0, total, &parts, Vec::new());
    }
    let end = match request.list_return_end {
        None | Some(0) => total,
        Some(e) => e.min(total),
    };
    if end < start {
        let mut parts = vec![format!(
            "listReturnEnd {end} is before listReturnStart {start}; {total} object(s) match"
        )];
        parts.extend(notes);
        return answer(request, 0, 0, total, &parts, Vec::new());
    }
    let page = matched[(start - 1) as usize..end as usize]
        .iter()
        .map(|o| (*o).clone())
        .collect();
    answer(request, start, end, total, &notes, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_removed_from_descriptions() {
        assert_eq!(
            markup_text("<p>Fire &amp; rescue</p><p>at the<tab/>harbour</p>"),
            "Fire & rescue at the harbour"
        );
        assert_eq!(markup_text("plain   text"), "plain text");
        assert_eq!(markup_text("broken <p>markup"), "broken markup");
        assert_eq!(markup_text(""), "");
    }

    #[test]
    fn general_search_grammar() {
        let t = |s: &str| Query::Term(s.into());
        assert_eq!(parse_query(""), Query::And(vec![]));
        assert_eq!(parse_query("Fire"), t("fire"));
        assert_eq!(
            parse_query("fire harbour"),
            Query::And(vec![t("fire"), t("harbour")])
        );
        assert_eq!(
            parse_query("fire AND harbour"),
            Query::And(vec![t("fire"), t("harbour")])
        );
        assert_eq!(
            parse_query("fire or flood"),
            Query::Or(vec![t("fire"), t("flood")])
        );
        assert_eq!(
            parse_query("fire Not drill"),
            Query::And(vec![t("fire"), Query::Not(Box::new(t("drill")))])
        );
        assert_eq!(parse_query("\"Evening   News\""), t("evening news"));
        assert_eq!(
            parse_query("(fire or flood) harbour"),
            Query::And(vec![Query::Or(vec![t("fire"), t("flood")]), t("harbour")])
        );
        // Tolerated oddities.
        assert_eq!(parse_query("and fire or"), t("fire"));
        assert_eq!(parse_query("not"), Query::And(vec![]));
        assert_eq!(parse_query("fire)"), t("fire"));
        assert_eq!(parse_query("(fire"), t("fire"));
        assert_eq!(parse_query("\"unclosed phrase"), t("unclosed phrase"));
        let deep = format!("{}fire{}", "(".repeat(500), ")".repeat(500));
        assert!(parse_query(&deep).matches(&["fire".into()]));
        let nots = format!("{}fire", "not ".repeat(100_001));
        assert_eq!(parse_query(&nots), Query::Not(Box::new(t("fire"))));
    }
}
