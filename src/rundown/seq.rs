//! Sequence edits shared by stories (within a running order) and items (within a story):
//! insert before, replace, move before, delete, swap. Each builds a new list and leaves
//! the input untouched; lookups go through one hash index per call, so an edit is linear
//! in the length of the list.

use std::collections::{HashMap, HashSet};

/// Something with an ID that is unique within its list.
pub(crate) trait Keyed {
    /// The ID.
    fn key(&self) -> &str;
}

/// Why a sequence edit failed; the caller adds the running order / story context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SeqError {
    /// No elements to act on.
    Empty,
    /// The ID is not in the list.
    Unknown(String),
    /// The ID would occur twice in the list.
    Duplicate(String),
    /// The ID is named twice in the request.
    Repeated(String),
    /// The move target is among the moved elements.
    TargetInSource(String),
    /// A swap of an element with itself.
    SwapSame(String),
}

/// Treats a blank target as "the end".
pub(crate) fn target(before: Option<&str>) -> Option<&str> {
    before.filter(|b| !b.is_empty())
}

fn index<T: Keyed>(list: &[T]) -> HashMap<&str, usize> {
    list.iter().enumerate().map(|(i, e)| (e.key(), i)).collect()
}

fn position<T: Keyed>(list: &[T], id: &str) -> Result<usize, SeqError> {
    list.iter()
        .position(|e| e.key() == id)
        .ok_or_else(|| SeqError::Unknown(id.to_string()))
}

/// Checks that `new` has no ID twice and none already in `list` (except `except`).
fn check_new<T: Keyed>(list: &[T], new: &[T], except: Option<&str>) -> Result<(), SeqError> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(new.len());
    for n in new {
        if !seen.insert(n.key()) {
            return Err(SeqError::Duplicate(n.key().to_string()));
        }
    }
    for e in list {
        if seen.contains(e.key()) && Some(e.key()) != except {
            return Err(SeqError::Duplicate(e.key().to_string()));
        }
    }
    Ok(())
}

/// Checks that `ids` is non-empty and names no ID twice.
fn check_ids(ids: &[String]) -> Result<HashSet<&str>, SeqError> {
    if ids.is_empty() {
        return Err(SeqError::Empty);
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id.as_str()) {
            return Err(SeqError::Repeated(id.clone()));
        }
    }
    Ok(seen)
}

/// `new` inserted, in order, before `before` (None or blank: at the end).
pub(crate) fn insert<T: Keyed + Clone>(
    list: &[T],
    before: Option<&str>,
    new: Vec<T>,
) -> Result<Vec<T>, SeqError> {
    if new.is_empty() {
        return Err(SeqError::Empty);
    }
    check_new(list, &new, None)?;
    let at = match target(before) {
        Some(b) => position(list, b)?,
        None => list.len(),
    };
    let mut out = Vec::with_capacity(list.len() + new.len());
    out.extend_from_slice(&list[..at]);
    out.extend(new);
    out.extend_from_slice(&list[at..]);
    Ok(out)
}

/// `target` removed and `new` put in its place, in order. `new` may reuse the target's ID.
pub(crate) fn replace<T: Keyed + Clone>(
    list: &[T],
    target: &str,
    new: Vec<T>,
) -> Result<Vec<T>, SeqError> {
    if new.is_empty() {
        return Err(SeqError::Empty);
    }
    let at = position(list, target)?;
    check_new(list, &new, Some(target))?;
    let mut out = Vec::with_capacity(list.len() + new.len());
    out.extend_from_slice(&list[..at]);
    out.extend(new);
    out.extend_from_slice(&list[at + 1..]);
    Ok(out)
}

/// The elements `ids` moved, in the given order, to just before `before` (None or blank:
/// the end).
pub(crate) fn move_before<T: Keyed + Clone>(
    list: &[T],
    before: Option<&str>,
    ids: &[String],
) -> Result<Vec<T>, SeqError> {
    let moving = check_ids(ids)?;
    let before = target(before);
    if let Some(b) = before
        && moving.contains(b)
    {
        return Err(SeqError::TargetInSource(b.to_string()));
    }
    let idx = index(list);
    let mut moved = Vec::with_capacity(ids.len());
    for id in ids {
        match idx.get(id.as_str()) {
            Some(&i) => moved.push(list[i].clone()),
            None => return Err(SeqError::Unknown(id.clone())),
        }
    }
    if let Some(b) = before
        && !idx.contains_key(b)
    {
        return Err(SeqError::Unknown(b.to_string()));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut moved = Some(moved);
    for e in list {
        if moving.contains(e.key()) {
            continue;
        }
        if Some(e.key()) == before
            && let Some(m) = moved.take()
        {
            out.extend(m);
        }
        out.push(e.clone());
    }
    if let Some(m) = moved {
        out.extend(m);
    }
    Ok(out)
}

/// The elements `ids` removed.
pub(crate) fn delete<T: Keyed + Clone>(list: &[T], ids: &[String]) -> Result<Vec<T>, SeqError> {
    let gone = check_ids(ids)?;
    let idx = index(list);
    if let Some(missing) = ids.iter().find(|id| !idx.contains_key(id.as_str())) {
        return Err(SeqError::Unknown(missing.clone()));
    }
    Ok(list
        .iter()
        .filter(|e| !gone.contains(e.key()))
        .cloned()
        .collect())
}

/// The elements `a` and `b` exchange places.
pub(crate) fn swap<T: Keyed + Clone>(list: &[T], a: &str, b: &str) -> Result<Vec<T>, SeqError> {
    if a == b {
        return Err(SeqError::SwapSame(a.to_string()));
    }
    let i = position(list, a)?;
    let j = position(list, b)?;
    let mut out = list.to_vec();
    out.swap(i, j);
    Ok(out)
}

/// The first repeated ID in a list, if any.
pub(crate) fn first_repeat<'a>(keys: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = HashSet::new();
    keys.into_iter().find(|k| !seen.insert(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Keyed for String {
        fn key(&self) -> &str {
            self
        }
    }

    fn list(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn joined(v: Result<Vec<String>, SeqError>) -> Result<String, SeqError> {
        v.map(|v| v.join(" "))
    }

    #[test]
    fn insert_cases() {
        let l = list("1 2 3");
        let cases: &[(Option<&str>, &str, Result<&str, SeqError>)] = &[
            (Some("2"), "a b", Ok("1 a b 2 3")),
            (Some("1"), "a", Ok("a 1 2 3")),
            (None, "a", Ok("1 2 3 a")),
            (Some(""), "a", Ok("1 2 3 a")),
            (Some("9"), "a", Err(SeqError::Unknown("9".into()))),
            (Some("2"), "3", Err(SeqError::Duplicate("3".into()))),
            (Some("2"), "a a", Err(SeqError::Duplicate("a".into()))),
            (Some("2"), "", Err(SeqError::Empty)),
        ];
        for (before, new, want) in cases {
            let got = joined(insert(&l, *before, list(new)));
            assert_eq!(got, want.clone().map(str::to_string), "{before:?} {new}");
        }
    }

    #[test]
    fn replace_cases() {
        let l = list("1 2 3");
        let cases: &[(&str, &str, Result<&str, SeqError>)] = &[
            ("2", "2", Ok("1 2 3")),
            ("2", "a b", Ok("1 a b 3")),
            ("2", "a 2 b", Ok("1 a 2 b 3")),
            ("3", "a", Ok("1 2 a")),
            ("9", "a", Err(SeqError::Unknown("9".into()))),
            ("2", "1", Err(SeqError::Duplicate("1".into()))),
            ("2", "a a", Err(SeqError::Duplicate("a".into()))),
            ("2", "", Err(SeqError::Empty)),
        ];
        for (t, new, want) in cases {
            let got = joined(replace(&l, t, list(new)));
            assert_eq!(got, want.clone().map(str::to_string), "{t} {new}");
        }
    }

    #[test]
    fn move_cases() {
        let l = list("1 2 3 4 5 6");
        let cases: &[(Option<&str>, &str, Result<&str, SeqError>)] = &[
            (Some("4"), "2 3 5 6 1", Ok("2 3 5 6 1 4")),
            (Some("1"), "3", Ok("3 1 2 4 5 6")),
            (Some("2"), "1", Ok("1 2 3 4 5 6")),
            (None, "1", Ok("2 3 4 5 6 1")),
            (Some(""), "3 1", Ok("2 4 5 6 3 1")),
            (Some("6"), "5 4", Ok("1 2 3 5 4 6")),
            (Some("3"), "3", Err(SeqError::TargetInSource("3".into()))),
            (Some("4"), "1 1", Err(SeqError::Repeated("1".into()))),
            (Some("4"), "9", Err(SeqError::Unknown("9".into()))),
            (Some("9"), "1", Err(SeqError::Unknown("9".into()))),
            (Some("4"), "", Err(SeqError::Empty)),
        ];
        for (before, ids, want) in cases {
            let got = joined(move_before(&l, *before, &list(ids)));
            assert_eq!(got, want.clone().map(str::to_string), "{before:?} {ids}");
        }
    }

    #[test]
    fn delete_and_swap_cases() {
        let l = list("1 2 3 4");
        assert_eq!(joined(delete(&l, &list("3 1"))), Ok("2 4".into()));
        assert_eq!(
            joined(delete(&l, &list("3 9"))),
            Err(SeqError::Unknown("9".into()))
        );
        assert_eq!(
            joined(delete(&l, &list("3 3"))),
            Err(SeqError::Repeated("3".into()))
        );
        assert_eq!(joined(delete(&l, &[])), Err(SeqError::Empty));
        assert_eq!(joined(swap(&l, "1", "4")), Ok("4 2 3 1".into()));
        assert_eq!(
            joined(swap(&l, "1", "1")),
            Err(SeqError::SwapSame("1".into()))
        );
        assert_eq!(
            joined(swap(&l, "1", "9")),
            Err(SeqError::Unknown("9".into()))
        );
    }

    #[test]
    fn first_repeat_finds_the_second_occurrence() {
        assert_eq!(first_repeat(["a", "b", "a"].into_iter()), Some("a"));
        assert_eq!(first_repeat(["a", "b"].into_iter()), None);
    }
}
