//! Reader for the supported DTD subset.

use std::collections::HashMap;

use super::model::{Automaton, Occur, Particle, positions};
use super::names::{is_name_char, is_name_start, is_xml_space};
use super::{AttrDecl, AttrDefault, AttrType, Content, Dtd, DtdError, ElementDecl};

/// Deepest group nesting accepted in a content model.
const MAX_GROUP_DEPTH: usize = 64;
/// Most name occurrences accepted in one content model.
const MAX_POSITIONS: usize = 2000;

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    names: Vec<String>,
    index: HashMap<String, u32>,
    elements: Vec<Option<ElementDecl>>,
    attlists: Vec<Vec<AttrDecl>>,
}

type R<T> = Result<T, DtdError>;

pub(crate) fn parse(src: &str) -> R<Dtd> {
    let mut p = Parser {
        src,
        pos: 0,
        names: Vec::new(),
        index: HashMap::new(),
        elements: Vec::new(),
        attlists: Vec::new(),
    };
    p.document()?;
    Ok(Dtd {
        names: p.names,
        index: p.index,
        elements: p.elements,
        attlists: p.attlists,
    })
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn line_at(&self, pos: usize) -> usize {
        1 + self.src.as_bytes()[..pos.min(self.src.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    fn line(&self) -> usize {
        self.line_at(self.pos)
    }

    /// Describes what is at the current position, for error messages.
    fn found(&self) -> String {
        let rest = self.rest();
        if rest.is_empty() {
            return "end of input".to_string();
        }
        let snippet: String = rest.chars().take(24).take_while(|&c| c != '\n').collect();
        let more = if snippet.len() < rest.len() {
            "..."
        } else {
            ""
        };
        format!("\"{snippet}{more}\"")
    }

    fn syntax(&self, expected: &str) -> DtdError {
        DtdError::Syntax {
            line: self.line(),
            message: format!("expected {expected}, found {}", self.found()),
        }
    }

    fn unsupported(&self, what: &str) -> DtdError {
        DtdError::Unsupported {
            line: self.line(),
            what: what.to_string(),
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Skips white space; rejects parameter entity references found instead.
    fn skip_ws(&mut self) -> R<bool> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_xml_space(c) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.check_pe()?;
        Ok(self.pos > start)
    }

    fn check_pe(&self) -> R<()> {
        if self.peek() == Some('%') {
            return Err(self.unsupported("parameter entity reference"));
        }
        Ok(())
    }

    fn require_ws(&mut self, ctx: &str) -> R<()> {
        if self.skip_ws()? {
            Ok(())
        } else {
            Err(self.syntax(&format!("white space {ctx}")))
        }
    }

    fn expect(&mut self, s: &str, what: &str) -> R<()> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.syntax(what))
        }
    }

    /// Reads a token made of name characters; `name` requires a name start.
    fn token(&mut self, name: bool, what: &str) -> R<&'a str> {
        self.check_pe()?;
        let rest = self.rest();
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            let ok = if i == 0 && name {
                is_name_start(c)
            } else {
                is_name_char(c)
            };
            if !ok {
                break;
            }
            end = i + c.len_utf8();
        }
        if end == 0 {
            return Err(self.syntax(what));
        }
        self.pos += end;
        Ok(&rest[..end])
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.index.get(name) {
            return s;
        }
        let s = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), s);
        self.elements.push(None);
        self.attlists.push(Vec::new());
        s
    }

    fn document(&mut self) -> R<()> {
        if self.rest().starts_with('\u{feff}') {
            self.pos += '\u{feff}'.len_utf8();
        }
        // An optional text declaration at the very start.
        if self.rest().starts_with("<?xml") {
            match self.rest().find("?>") {
                Some(end) => self.pos += end + 2,
                None => return Err(self.syntax("\"?>\" closing the text declaration")),
            }
        }
        loop {
            self.skip_ws()?;
            if self.rest().is_empty() {
                return Ok(());
            }
            if self.eat("<!--") {
                match self.rest().find("-->") {
                    Some(end) => self.pos += end + 3,
                    None => return Err(self.syntax("\"-->\" closing the comment")),
                }
            } else if self.rest().starts_with("<!ELEMENT") {
                self.pos += "<!ELEMENT".len();
                self.element_decl()?;
            } else if self.rest().starts_with("<!ATTLIST") {
                self.pos += "<!ATTLIST".len();
                self.attlist_decl()?;
            } else if self.rest().starts_with("<![") {
                return Err(self.unsupported("conditional section"));
            } else if self.rest().starts_with("<!ENTITY") {
                return Err(self.unsupported("entity declaration"));
            } else if self.rest().starts_with("<!NOTATION") {
                return Err(self.unsupported("notation declaration"));
            } else if self.rest().starts_with("<?") {
                return Err(self.unsupported("processing instruction"));
            } else {
                return Err(self.syntax("<!ELEMENT, <!ATTLIST or a comment"));
            }
        }
    }

    fn element_decl(&mut self) -> R<()> {
        let decl_line = self.line();
        self.require_ws("after <!ELEMENT")?;
        let name = self.token(true, "an element name")?;
        self.require_ws("after the element name")?;
        let model_start = self.pos;
        let content = if self.eat("EMPTY") {
            Content::Empty
        } else if self.eat("ANY") {
            Content::Any
        } else if self.peek() == Some('(') {
            self.content_spec()?
        } else {
            return Err(self.syntax("EMPTY, ANY or '(' starting a content model"));
        };
        self.skip_ws()?;
        self.expect(">", "'>' closing <!ELEMENT")?;
        if let Content::Children(particle, automaton) = &content
            && let Some(sym) = automaton.ambiguous_symbol()
        {
            let mut model = String::new();
            particle.render(&self.names, &mut model);
            return Err(DtdError::Syntax {
                line: self.line_at(model_start),
                message: format!(
                    "content model of {name} is not deterministic: {model} (after some children, \
                     an <{}> could match two places in the model)",
                    self.names[sym as usize]
                ),
            });
        }
        let sym = self.intern(name);
        if let Some(prev) = &self.elements[sym as usize] {
            return Err(DtdError::DuplicateElement {
                line: decl_line,
                name: name.to_string(),
                first: prev.line,
            });
        }
        self.elements[sym as usize] = Some(ElementDecl {
            line: decl_line,
            content,
        });
        Ok(())
    }

    /// Parses a content model starting at '('.
    fn content_spec(&mut self) -> R<Content> {
        let start = self.pos;
        self.pos += 1;
        self.skip_ws()?;
        if self.eat("#PCDATA") {
            return self.mixed();
        }
        self.pos = start;
        let particle = self.group(0)?;
        if positions(&particle) > MAX_POSITIONS {
            return Err(self.unsupported(&format!(
                "content model with more than {MAX_POSITIONS} element names"
            )));
        }
        let automaton = Automaton::build(&particle);
        Ok(Content::Children(particle, automaton))
    }

    /// Rest of a mixed content model, after `(#PCDATA`.
    fn mixed(&mut self) -> R<Content> {
        let mut syms = Vec::new();
        loop {
            self.skip_ws()?;
            if self.eat(")") {
                let star = self.eat("*");
                if !syms.is_empty() && !star {
                    return Err(self.syntax("'*' after a mixed content model with element names"));
                }
                return Ok(Content::Mixed(syms));
            }
            self.expect("|", "'|' or ')' in a mixed content model")?;
            self.skip_ws()?;
            let name = self.token(true, "an element name in a mixed content model")?;
            let sym = self.intern(name);
            if !syms.contains(&sym) {
                syms.push(sym);
            }
        }
    }

    fn occur(&mut self) -> Occur {
        if self.eat("?") {
            Occur::Opt
        } else if self.eat("*") {
            Occur::Star
        } else if self.eat("+") {
            Occur::Plus
        } else {
            Occur::One
        }
    }

    /// Parses a group `( cp (sep cp)* )occ` starting at '('.
    fn group(&mut self, depth: usize) -> R<Particle> {
        if depth >= MAX_GROUP_DEPTH {
            return Err(self.unsupported(&format!(
                "content model nested deeper than {MAX_GROUP_DEPTH} groups"
            )));
        }
        self.expect("(", "'('")?;
        let mut items = Vec::new();
        let mut sep: Option<char> = None;
        loop {
            self.skip_ws()?;
            if self.rest().starts_with("#PCDATA") {
                return Err(self.syntax("an element name or '(' (#PCDATA is only allowed first in a mixed content model)"));
            }
            let item = if self.peek() == Some('(') {
                self.group(depth + 1)?
            } else {
                let name = self.token(true, "an element name or '('")?;
                let sym = self.intern(name);
                Particle::Name(sym, self.occur())
            };
            items.push(item);
            self.skip_ws()?;
            match self.peek() {
                Some(')') => {
                    self.pos += 1;
                    break;
                }
                Some(c @ (',' | '|')) => {
                    if sep.is_some_and(|s| s != c) {
                        return Err(
                            self.syntax("the same separator (',' or '|') throughout a group")
                        );
                    }
                    sep = Some(c);
                    self.pos += 1;
                }
                _ => return Err(self.syntax("',', '|' or ')' in a content model")),
            }
        }
        let occ = self.occur();
        Ok(if sep == Some('|') {
            Particle::Choice(items, occ)
        } else {
            Particle::Seq(items, occ)
        })
    }

    fn attlist_decl(&mut self) -> R<()> {
        self.require_ws("after <!ATTLIST")?;
        let elem = self.token(true, "an element name")?;
        let sym = self.intern(elem);
        loop {
            let had_ws = self.skip_ws()?;
            if self.eat(">") {
                return Ok(());
            }
            if !had_ws {
                return Err(self.syntax("white space or '>' in <!ATTLIST"));
            }
            let attr_line = self.line();
            let name = self.token(true, "an attribute name or '>'")?;
            self.require_ws("after the attribute name")?;
            let ty = if self.peek() == Some('(') {
                self.enumeration()?
            } else {
                let type_start = self.pos;
                let kw = self.token(
                    true,
                    "an attribute type (CDATA, NMTOKEN, ID or an enumeration)",
                )?;
                match kw {
                    "CDATA" => AttrType::Cdata,
                    "NMTOKEN" => AttrType::Nmtoken,
                    "ID" => AttrType::Id,
                    "NMTOKENS" | "IDREF" | "IDREFS" | "ENTITY" | "ENTITIES" | "NOTATION" => {
                        self.pos = type_start;
                        return Err(self.unsupported(&format!("attribute type {kw}")));
                    }
                    _ => {
                        self.pos = type_start;
                        return Err(
                            self.syntax("an attribute type (CDATA, NMTOKEN, ID or an enumeration)")
                        );
                    }
                }
            };
            self.require_ws("after the attribute type")?;
            let default = if self.eat("#REQUIRED") {
                AttrDefault::Required
            } else if self.eat("#IMPLIED") {
                AttrDefault::Implied
            } else if self.eat("#FIXED") {
                self.require_ws("after #FIXED")?;
                AttrDefault::Fixed(self.default_value(&ty)?)
            } else if matches!(self.peek(), Some('"' | '\'')) {
                AttrDefault::Value(self.default_value(&ty)?)
            } else {
                return Err(self.syntax("#REQUIRED, #IMPLIED, #FIXED or a quoted default value"));
            };
            let list = &mut self.attlists[sym as usize];
            // As in XML, the first declaration of an attribute is binding.
            if !list.iter().any(|a| a.name == name) {
                list.push(AttrDecl {
                    name: name.to_string(),
                    line: attr_line,
                    ty,
                    default,
                });
            }
        }
    }

    fn enumeration(&mut self) -> R<AttrType> {
        self.pos += 1;
        let mut tokens = Vec::new();
        loop {
            self.skip_ws()?;
            let t = self.token(false, "an enumeration value (an NMTOKEN)")?;
            tokens.push(t.to_string());
            self.skip_ws()?;
            if self.eat(")") {
                return Ok(AttrType::Enum(tokens));
            }
            if !self.eat("|") {
                return Err(self.syntax("'|' or ')' in an enumeration (values are NMTOKENs: no spaces or punctuation other than '-', '.', '_', ':')"));
            }
        }
    }

    /// A quoted default value with references expanded, checked against `ty`.
    fn default_value(&mut self, ty: &AttrType) -> R<String> {
        let line = self.line();
        let quote = match self.peek() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(self.syntax("a quoted attribute value")),
        };
        self.pos += 1;
        let Some(end) = self.rest().find(quote) else {
            return Err(self.syntax("the closing quote of the attribute value"));
        };
        let raw = &self.rest()[..end];
        self.pos += end + 1;
        let value = super::expand_attr_value(raw).map_err(|message| DtdError::Syntax {
            line,
            message: format!("in default value: {message}"),
        })?;
        let bad = match ty {
            AttrType::Cdata => None,
            AttrType::Nmtoken => (!super::names::is_nmtoken(&value)).then_some("an NMTOKEN"),
            AttrType::Id => Some("no default (ID attributes must be #IMPLIED or #REQUIRED)"),
            AttrType::Enum(tokens) => {
                (!tokens.contains(&value)).then_some("one of the enumerated values")
            }
        };
        match bad {
            Some(expected) => Err(DtdError::Syntax {
                line,
                message: format!("default value \"{value}\" is invalid: expected {expected}"),
            }),
            None => Ok(value),
        }
    }
}
