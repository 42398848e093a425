//! Content models: the parsed particle tree, its DTD-syntax rendering, and a
//! Glushkov (position) automaton used to match children without backtracking.

use std::fmt::Write as _;

/// Occurrence indicator of a content particle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Occur {
    One,
    Opt,
    Star,
    Plus,
}

impl Occur {
    fn suffix(self) -> &'static str {
        match self {
            Occur::One => "",
            Occur::Opt => "?",
            Occur::Star => "*",
            Occur::Plus => "+",
        }
    }
}

/// A content particle (`cp` in the XML grammar). Names are symbol ids.
#[derive(Debug, Clone)]
pub(crate) enum Particle {
    Name(u32, Occur),
    Seq(Vec<Particle>, Occur),
    Choice(Vec<Particle>, Occur),
}

impl Particle {
    /// Writes the particle back in DTD syntax.
    pub(crate) fn render(&self, names: &[String], out: &mut String) {
        match self {
            Particle::Name(sym, occ) => {
                out.push_str(names.get(*sym as usize).map_or("?", String::as_str));
                out.push_str(occ.suffix());
            }
            Particle::Seq(items, occ) | Particle::Choice(items, occ) => {
                let sep = if matches!(self, Particle::Seq(..)) {
                    ", "
                } else {
                    " | "
                };
                out.push('(');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    item.render(names, out);
                }
                out.push(')');
                out.push_str(occ.suffix());
            }
        }
    }
}

/// Glushkov automaton: state 0 is the initial state, state `p >= 1` means
/// "the last child matched position `p` of the model".
#[derive(Debug, Clone)]
pub(crate) struct Automaton {
    /// Outgoing transitions per state: (symbol, target state).
    trans: Vec<Vec<(u32, u32)>>,
    accept: Vec<bool>,
}

struct Info {
    nullable: bool,
    first: Vec<u32>,
    last: Vec<u32>,
}

fn build_info(p: &Particle, syms: &mut Vec<u32>, follow: &mut Vec<Vec<u32>>) -> Info {
    let (mut info, occ) = match p {
        Particle::Name(sym, occ) => {
            syms.push(*sym);
            follow.push(Vec::new());
            let pos = syms.len() as u32;
            let info = Info {
                nullable: false,
                first: vec![pos],
                last: vec![pos],
            };
            (info, *occ)
        }
        Particle::Seq(items, occ) => {
            let infos: Vec<Info> = items.iter().map(|c| build_info(c, syms, follow)).collect();
            for i in 0..infos.len() {
                for next in &infos[i + 1..] {
                    for &l in &infos[i].last {
                        follow[l as usize - 1].extend_from_slice(&next.first);
                    }
                    if !next.nullable {
                        break;
                    }
                }
            }
            let mut first = Vec::new();
            for info in &infos {
                first.extend_from_slice(&info.first);
                if !info.nullable {
                    break;
                }
            }
            let mut last = Vec::new();
            for info in infos.iter().rev() {
                last.extend_from_slice(&info.last);
                if !info.nullable {
                    break;
                }
            }
            let nullable = infos.iter().all(|i| i.nullable);
            (
                Info {
                    nullable,
                    first,
                    last,
                },
                *occ,
            )
        }
        Particle::Choice(items, occ) => {
            let mut info = Info {
                nullable: false,
                first: Vec::new(),
                last: Vec::new(),
            };
            for c in items {
                let ci = build_info(c, syms, follow);
                info.nullable |= ci.nullable;
                info.first.extend(ci.first);
                info.last.extend(ci.last);
            }
            (info, *occ)
        }
    };
    if matches!(occ, Occur::Star | Occur::Plus) {
        for &l in &info.last {
            follow[l as usize - 1].extend_from_slice(&info.first);
        }
    }
    if matches!(occ, Occur::Opt | Occur::Star) {
        info.nullable = true;
    }
    info
}

/// Number of name occurrences (automaton positions) in a particle.
pub(crate) fn positions(p: &Particle) -> usize {
    match p {
        Particle::Name(..) => 1,
        Particle::Seq(items, _) | Particle::Choice(items, _) => items.iter().map(positions).sum(),
    }
}

impl Automaton {
    /// Builds the automaton of a content model.
    pub(crate) fn build(p: &Particle) -> Automaton {
        let mut syms = Vec::new();
        let mut follow = Vec::new();
        let info = build_info(p, &mut syms, &mut follow);
        let n = syms.len();
        let edges = |targets: &[u32]| {
            let mut t: Vec<(u32, u32)> =
                targets.iter().map(|&q| (syms[q as usize - 1], q)).collect();
            t.sort_unstable();
            t.dedup();
            t
        };
        let mut trans = Vec::with_capacity(n + 1);
        trans.push(edges(&info.first));
        for f in &follow {
            trans.push(edges(f));
        }
        let mut accept = vec![false; n + 1];
        accept[0] = info.nullable;
        for &l in &info.last {
            accept[l as usize] = true;
        }
        Automaton { trans, accept }
    }

    /// Advances `states` over one child symbol. Returns false (leaving
    /// `states` untouched) when no state accepts the symbol.
    pub(crate) fn step(&self, states: &mut Vec<u32>, sym: u32) -> bool {
        let mut next: Vec<u32> = Vec::new();
        for &s in states.iter() {
            if let Some(t) = self.trans.get(s as usize) {
                let start = t.partition_point(|&(x, _)| x < sym);
                next.extend(
                    t[start..]
                        .iter()
                        .take_while(|&&(x, _)| x == sym)
                        .map(|&(_, q)| q),
                );
            }
        }
        if next.is_empty() {
            return false;
        }
        if next.len() > 1 {
            next.sort_unstable();
            next.dedup();
        }
        *states = next;
        true
    }

    /// A symbol that some state can read into two different positions, if any:
    /// such a model is not deterministic (XML 1.0 appendix E).
    pub(crate) fn ambiguous_symbol(&self) -> Option<u32> {
        self.trans
            .iter()
            .find_map(|t| t.windows(2).find(|w| w[0].0 == w[1].0).map(|w| w[0].0))
    }

    /// Whether any of `states` is final.
    pub(crate) fn accepts(&self, states: &[u32]) -> bool {
        states
            .iter()
            .any(|&s| self.accept.get(s as usize).copied().unwrap_or(false))
    }

    /// Symbols that may come next from `states`, sorted and deduplicated.
    pub(crate) fn expected(&self, states: &[u32]) -> Vec<u32> {
        let mut out: Vec<u32> = states
            .iter()
            .filter_map(|&s| self.trans.get(s as usize))
            .flat_map(|t| t.iter().map(|&(x, _)| x))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Renders a list of symbols as `a, b, c` (at most `max`, then `...`).
pub(crate) fn render_list(syms: &[u32], names: &[String], max: usize, more: bool) -> String {
    let mut s = String::new();
    for (i, sym) in syms.iter().take(max).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(names.get(*sym as usize).map_or("?", String::as_str));
    }
    if more || syms.len() > max {
        let _ = write!(s, "{}...", if s.is_empty() { "" } else { ", " });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: u32) -> Particle {
        Particle::Name(s, Occur::One)
    }

    fn run(a: &Automaton, word: &[u32]) -> bool {
        let mut st = vec![0];
        word.iter().all(|&s| a.step(&mut st, s)) && a.accepts(&st)
    }

    #[test]
    fn sequence_with_optional_and_plus() {
        // (a, b?, c+)
        let p = Particle::Seq(
            vec![
                n(0),
                Particle::Name(1, Occur::Opt),
                Particle::Name(2, Occur::Plus),
            ],
            Occur::One,
        );
        let a = Automaton::build(&p);
        assert_eq!(a.ambiguous_symbol(), None);
        assert!(run(&a, &[0, 2]));
        assert!(run(&a, &[0, 1, 2, 2, 2]));
        assert!(!run(&a, &[0]));
        assert!(!run(&a, &[0, 1, 1, 2]));
        assert!(!run(&a, &[]));
    }

    #[test]
    fn nondeterministic_model_is_matched_correctly() {
        // ((a, b) | (a, c))*  -- not deterministic, still matched exactly
        let p = Particle::Choice(
            vec![
                Particle::Seq(vec![n(0), n(1)], Occur::One),
                Particle::Seq(vec![n(0), n(2)], Occur::One),
            ],
            Occur::Star,
        );
        let a = Automaton::build(&p);
        assert_eq!(a.ambiguous_symbol(), Some(0));
        assert!(run(&a, &[]));
        assert!(run(&a, &[0, 2, 0, 1]));
        assert!(!run(&a, &[0, 0]));
        assert!(!run(&a, &[0]));
    }

    #[test]
    fn render_round_trip() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let p = Particle::Seq(
            vec![n(0), Particle::Choice(vec![n(1), n(2)], Occur::Plus)],
            Occur::Opt,
        );
        let mut s = String::new();
        p.render(&names, &mut s);
        assert_eq!(s, "(a, (b | c)+)?");
    }
}
