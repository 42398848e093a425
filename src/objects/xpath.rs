//! The XPath subset of mosReqObjList searchFields, evaluated against one mosObj at a time.
//!
//! The searchable schema (`dtd/searchable-schema.xsd`) is a `mosObj` element whose children are
//! the [`Field`]s: objID, objSlug, mosAbstract, objGroup, objType, objTB, objRev, objDur,
//! status, objAir, createdBy, created, changedBy, changed and description (its text without
//! markup). mosAbstract and objGroup exist only when the object has them.
//!
//! Supported (XPath 1.0 semantics, names and strings case-sensitive):
//! - location paths: absolute from `/mosObj` (`/mosObj/objSlug`), `//objSlug`, relative to the
//!   mosObj (`objSlug`, `.`, `..`, `*`, `text()`), with predicates on any step
//!   (`/mosObj[objType='VIDEO']`, `/mosObj/objDur[. > 500]`, `/mosObj/objSlug[1]`);
//! - literals in `'…'` or `"…"`, numbers, unary minus, parentheses;
//! - comparisons `=`, `!=`, `<`, `>`, `<=`, `>=` (node-sets compare existentially, `<` and
//!   friends compare numbers), `and`, `or`;
//! - functions `not()`, `true()`, `false()`, `boolean()`, `string()`, `number()`,
//!   `contains()`, `starts-with()`, `string-length()`, `normalize-space()`.
//!
//! A searchField matches an object when its XPath, evaluated with the object's mosObj element
//! as context node, is true (a node-set is true when it is not empty): `/mosObj/objGroup`
//! matches objects that have a group, `contains(objSlug,'news')` those whose slug contains
//! "news". A relative path may also start with `mosObj` (`mosObj/objDur > 500`).
//!
//! Not supported (the search then answers no objects and says why): attributes (`@x`), axes
//! written out (`child::`), arithmetic (`+ - * div mod` between values), unions (`|`),
//! variables, other functions, and any element name outside the schema (such as the content
//! of mosExternalMetadata).

use crate::mos::structures::{MosObj, format_number};

/// Deepest nesting of parentheses, predicates and function calls accepted.
const MAX_DEPTH: usize = 32;
/// Longest XPath accepted, in characters.
const MAX_LEN: usize = 1024;

/// A field of the searchable schema: a child element of mosObj.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// objID.
    ObjId,
    /// objSlug.
    ObjSlug,
    /// mosAbstract (text without markup).
    MosAbstract,
    /// objGroup.
    ObjGroup,
    /// objType.
    ObjType,
    /// objTB.
    ObjTb,
    /// objRev.
    ObjRev,
    /// objDur.
    ObjDur,
    /// status.
    Status,
    /// objAir.
    ObjAir,
    /// createdBy.
    CreatedBy,
    /// created.
    Created,
    /// changedBy.
    ChangedBy,
    /// changed.
    Changed,
    /// description (text without markup).
    Description,
}

/// How values of a field sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text, compared without regard to case.
    Text,
    /// A number.
    Number,
    /// A MOS time, compared as instants.
    Time,
}

impl Field {
    /// Every field, in mosObj order.
    pub const ALL: [Field; 15] = [
        Field::ObjId,
        Field::ObjSlug,
        Field::MosAbstract,
        Field::ObjGroup,
        Field::ObjType,
        Field::ObjTb,
        Field::ObjRev,
        Field::ObjDur,
        Field::Status,
        Field::ObjAir,
        Field::CreatedBy,
        Field::Created,
        Field::ChangedBy,
        Field::Changed,
        Field::Description,
    ];

    /// The element name.
    pub fn name(self) -> &'static str {
        match self {
            Field::ObjId => "objID",
            Field::ObjSlug => "objSlug",
            Field::MosAbstract => "mosAbstract",
            Field::ObjGroup => "objGroup",
            Field::ObjType => "objType",
            Field::ObjTb => "objTB",
            Field::ObjRev => "objRev",
            Field::ObjDur => "objDur",
            Field::Status => "status",
            Field::ObjAir => "objAir",
            Field::CreatedBy => "createdBy",
            Field::Created => "created",
            Field::ChangedBy => "changedBy",
            Field::Changed => "changed",
            Field::Description => "description",
        }
    }

    /// The field with this element name (case-sensitive).
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// How the field sorts.
    pub fn kind(self) -> FieldKind {
        match self {
            Field::ObjTb | Field::ObjRev | Field::ObjDur => FieldKind::Number,
            Field::Created | Field::Changed => FieldKind::Time,
            _ => FieldKind::Text,
        }
    }

    /// The field's string value for `obj`, or `None` when the element is absent.
    pub fn value(self, obj: &MosObj) -> Option<String> {
        Some(match self {
            Field::ObjId => obj.id.clone(),
            Field::ObjSlug => obj.slug.clone(),
            Field::MosAbstract => super::search::markup_text(obj.abstract_.as_ref()?.as_str()),
            Field::ObjGroup => obj.group.clone()?,
            Field::ObjType => obj.obj_type.as_wire().to_owned(),
            Field::ObjTb => format_number(obj.time_base),
            Field::ObjRev => obj.revision.to_string(),
            Field::ObjDur => obj.duration.to_string(),
            Field::Status => obj.status.clone(),
            Field::ObjAir => obj.air.as_wire().to_owned(),
            Field::CreatedBy => obj.created_by.clone(),
            Field::Created => obj.created.as_wire().to_owned(),
            Field::ChangedBy => obj.changed_by.clone(),
            Field::Changed => obj.changed.as_wire().to_owned(),
            Field::Description => super::search::description_text(obj),
        })
    }
}

/// Why an XPath is outside the subset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XPathError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, XPathError> {
    Err(XPathError(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Slash,
    DoubleSlash,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Dot,
    DotDot,
    Star,
    At,
    Pipe,
    Plus,
    Minus,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Dollar,
    ColonColon,
    Literal(String),
    Number(f64),
    Name(String),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, XPathError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '/' if next == Some('/') => (Tok::DoubleSlash, 2),
            '/' => (Tok::Slash, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '.' if next == Some('.') => (Tok::DotDot, 2),
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => number(&chars, i)?,
            '.' => (Tok::Dot, 1),
            '*' => (Tok::Star, 1),
            '@' => (Tok::At, 1),
            '|' => (Tok::Pipe, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '=' => (Tok::Eq, 1),
            '!' if next == Some('=') => (Tok::Ne, 2),
            '<' if next == Some('=') => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if next == Some('=') => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '$' => (Tok::Dollar, 1),
            ':' if next == Some(':') => (Tok::ColonColon, 2),
            '\'' | '"' => {
                let Some(end) = chars[i + 1..].iter().position(|&x| x == c) else {
                    return err("a string literal is not closed");
                };
                let text: String = chars[i + 1..i + 1 + end].iter().collect();
                (Tok::Literal(text), end + 2)
            }
            c if c.is_ascii_digit() => number(&chars, i)?,
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '-' | '.'))
                {
                    j += 1;
                }
                // A trailing '-' or '.' belongs to what follows (e.g. `objDur-1`).
                while j > i + 1 && matches!(chars[j - 1], '-' | '.') {
                    j -= 1;
                }
                (Tok::Name(chars[i..j].iter().collect()), j - i)
            }
            other => return err(format!("unexpected character '{other}'")),
        };
        out.push(tok);
        i += len;
    }
    Ok(out)
}

fn number(chars: &[char], start: usize) -> Result<(Tok, usize), XPathError> {
    let mut j = start;
    let mut dot = false;
    while j < chars.len() && (chars[j].is_ascii_digit() || (chars[j] == '.' && !dot)) {
        dot |= chars[j] == '.';
        j += 1;
    }
    let text: String = chars[start..j].iter().collect();
    match text.parse::<f64>() {
        Ok(n) => Ok((Tok::Number(n), j - start)),
        Err(_) => err(format!("\"{text}\" is not a number")),
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Not,
    True,
    False,
    Boolean,
    String,
    Number,
    Contains,
    StartsWith,
    StringLength,
    NormalizeSpace,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "not" => Func::Not,
            "true" => Func::True,
            "false" => Func::False,
            "boolean" => Func::Boolean,
            "string" => Func::String,
            "number" => Func::Number,
            "contains" => Func::Contains,
            "starts-with" => Func::StartsWith,
            "string-length" => Func::StringLength,
            "normalize-space" => Func::NormalizeSpace,
            _ => return None,
        })
    }

    /// Allowed argument counts.
    fn arity(self) -> (usize, usize) {
        match self {
            Func::True | Func::False => (0, 0),
            Func::Not | Func::Boolean => (1, 1),
            Func::String | Func::Number | Func::StringLength | Func::NormalizeSpace => (0, 1),
            Func::Contains | Func::StartsWith => (2, 2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Child,
    DescendantOrSelf,
    SelfNode,
    Parent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    /// `mosObj`.
    MosObj,
    /// A field name.
    Field(Field),
    /// `*`.
    AnyElement,
    /// `node()` (also `.` and `..`).
    AnyNode,
    /// `text()`: the text of a field.
    Text,
}

#[derive(Debug, Clone, PartialEq)]
struct Step {
    axis: Axis,
    test: Test,
    predicates: Vec<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    Literal(String),
    Number(f64),
    Call(Func, Vec<Expr>),
    Path { absolute: bool, steps: Vec<Step> },
}

/// A parsed searchField XPath.
#[derive(Debug, Clone, PartialEq)]
pub struct XPath {
    expr: Expr,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_name(&mut self, name: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Name(n)) if n == name) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), XPathError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err("nested too deeply");
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, XPathError> {
        self.enter()?;
        let mut left = self.and()?;
        while self.eat_name("or") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, XPathError> {
        let mut left = self.equality()?;
        while self.eat_name("and") {
            let right = self.equality()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, XPathError> {
        let mut left = self.relational()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Eq) => Cmp::Eq,
                Some(Tok::Ne) => Cmp::Ne,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.relational()?;
            left = Expr::Compare(op, Box::new(left), Box::new(right));
        }
    }

    fn relational(&mut self) -> Result<Expr, XPathError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Lt) => Cmp::Lt,
                Some(Tok::Le) => Cmp::Le,
                Some(Tok::Gt) => Cmp::Gt,
                Some(Tok::Ge) => Cmp::Ge,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Compare(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, XPathError> {
        if self.eat(&Tok::Minus) {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Negate(Box::new(inner)));
        }
        let e = self.primary()?;
        match self.peek() {
            Some(Tok::Plus | Tok::Minus | Tok::Star) => err("arithmetic is not supported"),
            Some(Tok::Name(n)) if n == "div" || n == "mod" => err("arithmetic is not supported"),
            Some(Tok::Pipe) => err("unions (|) are not supported"),
            _ => Ok(e),
        }
    }

    fn primary(&mut self) -> Result<Expr, XPathError> {
        match self.peek().cloned() {
            None => err("the expression ends too early"),
            Some(Tok::Literal(s)) => {
                self.pos += 1;
                Ok(Expr::Literal(s))
            }
            Some(Tok::Number(n)) => {
                self.pos += 1;
                Ok(Expr::Number(n))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                if !self.eat(&Tok::RParen) {
                    return err("a '(' is not closed");
                }
                if self.peek() == Some(&Tok::LBracket) || self.peek() == Some(&Tok::Slash) {
                    return err("filters on parenthesised expressions are not supported");
                }
                Ok(e)
            }
            Some(Tok::Name(name)) if self.peek_at(1) == Some(&Tok::LParen) => {
                if name == "node" || name == "text" {
                    return self.path();
                }
                let Some(func) = Func::from_name(&name) else {
                    return err(format!("function {name}() is not supported"));
                };
                self.pos += 2;
                self.enter()?;
                let mut args = Vec::new();
                if !self.eat(&Tok::RParen) {
                    loop {
                        args.push(self.or()?);
                        if self.eat(&Tok::Comma) {
                            continue;
                        }
                        if self.eat(&Tok::RParen) {
                            break;
                        }
                        return err(format!("{name}( is not closed"));
                    }
                }
                self.depth -= 1;
                let (min, max) = func.arity();
                if args.len() < min || args.len() > max {
                    return err(format!("{name}() takes {min} to {max} arguments"));
                }
                Ok(Expr::Call(func, args))
            }
            Some(Tok::Dollar) => err("variables are not supported"),
            Some(Tok::At) => err("attributes (@) are not in the searchable schema"),
            Some(_) => self.path(),
        }
    }

    fn path(&mut self) -> Result<Expr, XPathError> {
        let mut steps = Vec::new();
        let absolute = match self.peek() {
            Some(Tok::Slash) => {
                self.pos += 1;
                true
            }
            Some(Tok::DoubleSlash) => {
                self.pos += 1;
                steps.push(descendant_or_self());
                true
            }
            _ => false,
        };
        if absolute && steps.is_empty() && !self.starts_step() {
            // `/` alone: the document.
            return Ok(Expr::Path { absolute, steps });
        }
        loop {
            steps.push(self.step()?);
            match self.peek() {
                Some(Tok::Slash) => self.pos += 1,
                Some(Tok::DoubleSlash) => {
                    self.pos += 1;
                    steps.push(descendant_or_self());
                }
                _ => break,
            }
        }
        if absolute
            && steps.first().is_some_and(|s| {
                s.axis == Axis::Child && matches!(s.test, Test::Field(_) | Test::Text)
            })
        {
            return err("absolute paths start with /mosObj, e.g. /mosObj/objSlug");
        }
        Ok(Expr::Path { absolute, steps })
    }

    fn starts_step(&self) -> bool {
        matches!(
            self.peek(),
            Some(Tok::Name(_) | Tok::Dot | Tok::DotDot | Tok::Star | Tok::At)
        )
    }

    fn step(&mut self) -> Result<Step, XPathError> {
        let (axis, test) = match self.peek().cloned() {
            Some(Tok::Dot) => {
                self.pos += 1;
                (Axis::SelfNode, Test::AnyNode)
            }
            Some(Tok::DotDot) => {
                self.pos += 1;
                (Axis::Parent, Test::AnyNode)
            }
            Some(Tok::Star) => {
                self.pos += 1;
                (Axis::Child, Test::AnyElement)
            }
            Some(Tok::At) => return err("attributes (@) are not in the searchable schema"),
            Some(Tok::Name(name)) => {
                self.pos += 1;
                if self.peek() == Some(&Tok::ColonColon) {
                    return err(format!("axes ({name}::) are not supported"));
                }
                if self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    if !self.eat(&Tok::RParen) {
                        return err(format!("{name}() takes no arguments"));
                    }
                    match name.as_str() {
                        "text" => (Axis::Child, Test::Text),
                        "node" => (Axis::Child, Test::AnyNode),
                        _ => return err(format!("{name}() is not a node test")),
                    }
                } else if name == "mosObj" {
                    (Axis::Child, Test::MosObj)
                } else if let Some(f) = Field::from_name(&name) {
                    (Axis::Child, Test::Field(f))
                } else {
                    return err(format!("\"{name}\" is not in the searchable schema"));
                }
            }
            Some(t) => return err(format!("unexpected {}", describe(&t))),
            None => return err("the path ends with '/'"),
        };
        let mut predicates = Vec::new();
        while self.eat(&Tok::LBracket) {
            self.enter()?;
            predicates.push(self.or()?);
            self.depth -= 1;
            if !self.eat(&Tok::RBracket) {
                return err("a '[' is not closed");
            }
        }
        Ok(Step {
            axis,
            test,
            predicates,
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Literal(s) => format!("'{s}'"),
        Tok::Number(n) => format_number(*n),
        Tok::Name(n) => format!("\"{n}\""),
        Tok::RBracket => "']'".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn descendant_or_self() -> Step {
    Step {
        axis: Axis::DescendantOrSelf,
        test: Test::AnyNode,
        predicates: Vec::new(),
    }
}

impl XPath {
    /// Parses an XPath of the subset.
    pub fn parse(text: &str) -> Result<XPath, XPathError> {
        if text.trim().is_empty() {
            return err("the XPath is empty");
        }
        if text.chars().count() > MAX_LEN {
            return err(format!("longer than {MAX_LEN} characters"));
        }
        let toks = tokenize(text)?;
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        let expr = p.or()?;
        if let Some(t) = p.peek() {
            return err(format!("unexpected {} after the expression", describe(t)));
        }
        Ok(XPath { expr })
    }

    /// Whether `obj` matches: the XPath's boolean value with the object's mosObj as context.
    pub fn matches(&self, obj: &MosObj) -> bool {
        let cx = Eval { obj };
        let v = cx.eval(&self.expr, Node::Obj);
        cx.boolean(&v)
    }

    /// The field the XPath is about, used as the sort key of a searchField with
    /// sortByOrder: the field a path selects (`/mosObj/objDur[. > 5]` → objDur), otherwise the
    /// first field named in it (`/mosObj[objType='VIDEO']`, `contains(objSlug,'x')`).
    pub fn sort_field(&self) -> Option<Field> {
        if let Expr::Path { steps, .. } = &self.expr {
            for s in steps.iter().rev() {
                match s.test {
                    Test::Field(f) => return Some(f),
                    Test::Text => continue,
                    Test::AnyNode if s.axis == Axis::SelfNode => continue,
                    _ => break,
                }
            }
        }
        first_field(&self.expr)
    }
}

fn first_field(e: &Expr) -> Option<Field> {
    match e {
        Expr::Or(a, b) | Expr::And(a, b) | Expr::Compare(_, a, b) => {
            first_field(a).or_else(|| first_field(b))
        }
        Expr::Negate(a) => first_field(a),
        Expr::Call(_, args) => args.iter().find_map(first_field),
        Expr::Path { steps, .. } => steps.iter().find_map(|s| match s.test {
            Test::Field(f) => Some(f),
            _ => s.predicates.iter().find_map(first_field),
        }),
        Expr::Literal(_) | Expr::Number(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// A node of one object's tree: the document, its mosObj element, a field element, or the
/// text node of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    Obj,
    Field(Field),
    Text(Field),
}

#[derive(Debug, Clone)]
enum Value {
    Nodes(Vec<Node>),
    Str(String),
    Num(f64),
    Bool(bool),
}

struct Eval<'a> {
    obj: &'a MosObj,
}

fn str_to_num(s: &str) -> f64 {
    let t = s.trim();
    let ok = !t.is_empty()
        && t.strip_prefix('-')
            .unwrap_or(t)
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && t.chars().filter(|&c| c == '.').count() <= 1
        && t.chars().any(|c| c.is_ascii_digit());
    if ok {
        t.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

fn num_to_str(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format_number(n)
    }
}

impl Eval<'_> {
    fn present(&self, f: Field) -> bool {
        match f {
            Field::ObjGroup => self.obj.group.is_some(),
            Field::MosAbstract => self.obj.abstract_.is_some(),
            _ => true,
        }
    }

    fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        Field::ALL.into_iter().filter(|f| self.present(*f))
    }

    fn string_value(&self, n: Node) -> String {
        match n {
            Node::Field(f) | Node::Text(f) => f.value(self.obj).unwrap_or_default(),
            Node::Root | Node::Obj => self
                .fields()
                .filter_map(|f| f.value(self.obj))
                .collect::<Vec<_>>()
                .concat(),
        }
    }

    fn children(&self, n: Node) -> Vec<Node> {
        match n {
            Node::Root => vec![Node::Obj],
            Node::Obj => self.fields().map(Node::Field).collect(),
            Node::Field(f) => {
                if f.value(self.obj).is_some_and(|v| !v.is_empty()) {
                    vec![Node::Text(f)]
                } else {
                    Vec::new()
                }
            }
            Node::Text(_) => Vec::new(),
        }
    }

    fn parent(n: Node) -> Option<Node> {
        match n {
            Node::Root => None,
            Node::Obj => Some(Node::Root),
            Node::Field(_) => Some(Node::Obj),
            Node::Text(f) => Some(Node::Field(f)),
        }
    }

    fn descendants_or_self(&self, n: Node, out: &mut Vec<Node>) {
        out.push(n);
        for c in self.children(n) {
            self.descendants_or_self(c, out);
        }
    }

    fn test(test: Test, n: Node) -> bool {
        match (test, n) {
            (Test::AnyNode, _) => true,
            (Test::MosObj, Node::Obj) => true,
            (Test::Field(f), Node::Field(g)) => f == g,
            (Test::AnyElement, Node::Obj | Node::Field(_)) => true,
            (Test::Text, Node::Text(_)) => true,
            _ => false,
        }
    }

    fn step(&self, step: &Step, context: &[Node]) -> Vec<Node> {
        let mut out: Vec<Node> = Vec::new();
        for &n in context {
            let candidates: Vec<Node> = match step.axis {
                // Our mosObj has no mosObj child: `mosObj` from the mosObj is the mosObj
                // itself, so relative paths may start with it.
                Axis::Child if n == Node::Obj && step.test == Test::MosObj => vec![Node::Obj],
                Axis::Child => self.children(n),
                Axis::SelfNode => vec![n],
                Axis::Parent => Self::parent(n).into_iter().collect(),
                Axis::DescendantOrSelf => {
                    let mut v = Vec::new();
                    self.descendants_or_self(n, &mut v);
                    v
                }
            };
            let mut selected: Vec<Node> = candidates
                .into_iter()
                .filter(|c| Self::test(step.test, *c))
                .collect();
            for pred in &step.predicates {
                selected = selected
                    .into_iter()
                    .enumerate()
                    .filter(|(i, c)| match self.eval(pred, *c) {
                        Value::Num(p) => p == (i + 1) as f64,
                        v => self.boolean(&v),
                    })
                    .map(|(_, c)| c)
                    .collect();
            }
            for s in selected {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    fn eval(&self, e: &Expr, context: Node) -> Value {
        match e {
            Expr::Or(a, b) => Value::Bool(
                self.boolean(&self.eval(a, context)) || self.boolean(&self.eval(b, context)),
            ),
            Expr::And(a, b) => Value::Bool(
                self.boolean(&self.eval(a, context)) && self.boolean(&self.eval(b, context)),
            ),
            Expr::Compare(op, a, b) => {
                Value::Bool(self.compare(*op, &self.eval(a, context), &self.eval(b, context)))
            }
            Expr::Negate(a) => Value::Num(-self.number(&self.eval(a, context))),
            Expr::Literal(s) => Value::Str(s.clone()),
            Expr::Number(n) => Value::Num(*n),
            Expr::Path { absolute, steps } => {
                let mut nodes = vec![if *absolute { Node::Root } else { context }];
                for s in steps {
                    nodes = self.step(s, &nodes);
                }
                Value::Nodes(nodes)
            }
            Expr::Call(f, args) => self.call(*f, args, context),
        }
    }

    fn call(&self, f: Func, args: &[Expr], context: Node) -> Value {
        let arg = |i: usize| args.get(i).map(|a| self.eval(a, context));
        let string_arg = |i: usize| match arg(i) {
            Some(v) => self.string(&v),
            None => self.string_value(context),
        };
        match f {
            Func::True => Value::Bool(true),
            Func::False => Value::Bool(false),
            Func::Not => Value::Bool(!arg(0).is_some_and(|v| self.boolean(&v))),
            Func::Boolean => Value::Bool(arg(0).is_some_and(|v| self.boolean(&v))),
            Func::String => Value::Str(string_arg(0)),
            Func::Number => Value::Num(str_to_num_or(&arg(0), self, context)),
            Func::StringLength => Value::Num(string_arg(0).chars().count() as f64),
            Func::NormalizeSpace => Value::Str(
                string_arg(0)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Func::Contains => Value::Bool(string_arg(0).contains(&string_arg(1))),
            Func::StartsWith => Value::Bool(string_arg(0).starts_with(&string_arg(1))),
        }
    }

    fn boolean(&self, v: &Value) -> bool {
        match v {
            Value::Nodes(n) => !n.is_empty(),
            Value::Str(s) => !s.is_empty(),
            Value::Num(n) => *n != 0.0 && !n.is_nan(),
            Value::Bool(b) => *b,
        }
    }

    fn string(&self, v: &Value) -> String {
        match v {
            Value::Nodes(n) => n.first().map(|n| self.string_value(*n)).unwrap_or_default(),
            Value::Str(s) => s.clone(),
            Value::Num(n) => num_to_str(*n),
            Value::Bool(b) => b.to_string(),
        }
    }

    fn number(&self, v: &Value) -> f64 {
        match v {
            Value::Num(n) => *n,
            Value::Bool(b) => f64::from(u8::from(*b)),
            other => str_to_num(&self.string(other)),
        }
    }

    fn compare(&self, op: Cmp, a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Nodes(x), Value::Nodes(y)) => x.iter().any(|m| {
                let ms = self.string_value(*m);
                y.iter().any(|n| {
                    let ns = self.string_value(*n);
                    compare_atoms(op, &Value::Str(ms.clone()), &Value::Str(ns), self)
                })
            }),
            (Value::Nodes(x), Value::Bool(_)) | (Value::Bool(_), Value::Nodes(x)) => {
                let nb = Value::Bool(!x.is_empty());
                if matches!(a, Value::Nodes(_)) {
                    compare_atoms(op, &nb, b, self)
                } else {
                    compare_atoms(op, a, &nb, self)
                }
            }
            (Value::Nodes(x), other) => x
                .iter()
                .any(|n| compare_atoms(op, &Value::Str(self.string_value(*n)), other, self)),
            (other, Value::Nodes(y)) => y
                .iter()
                .any(|n| compare_atoms(op, other, &Value::Str(self.string_value(*n)), self)),
            _ => compare_atoms(op, a, b, self),
        }
    }
}

fn str_to_num_or(v: &Option<Value>, cx: &Eval<'_>, context: Node) -> f64 {
    match v {
        Some(v) => cx.number(v),
        None => str_to_num(&cx.string_value(context)),
    }
}

/// XPath 1.0 comparison of two values that are not node-sets.
fn compare_atoms(op: Cmp, a: &Value, b: &Value, cx: &Eval<'_>) -> bool {
    match op {
        Cmp::Eq | Cmp::Ne => {
            let equal = if matches!(a, Value::Bool(_)) || matches!(b, Value::Bool(_)) {
                cx.boolean(a) == cx.boolean(b)
            } else if matches!(a, Value::Num(_)) || matches!(b, Value::Num(_)) {
                cx.number(a) == cx.number(b)
            } else {
                cx.string(a) == cx.string(b)
            };
            equal == (op == Cmp::Eq)
        }
        _ => {
            let (x, y) = (cx.number(a), cx.number(b));
            match op {
                Cmp::Lt => x < y,
                Cmp::Le => x <= y,
                Cmp::Gt => x > y,
                _ => x >= y,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mos::structures::{AirStatus, ObjType, RawXml};
    use crate::mos::time::MosTime;

    fn obj() -> MosObj {
        MosObj {
            id: "CLIP-1".into(),
            slug: "Evening news open".into(),
            abstract_: None,
            group: Some("Clips".into()),
            obj_type: ObjType::Video,
            time_base: 50.0,
            revision: 3,
            duration: 750,
            status: "NEW".into(),
            air: AirStatus::Ready,
            paths: Vec::new(),
            created_by: "op".into(),
            created: MosTime::from_wire("2024-05-01T16:00:00,000Z"),
            changed_by: "op".into(),
            changed: MosTime::from_wire("2024-05-01T16:00:00,000Z"),
            description: RawXml("<p>Titles &amp; music</p>".into()),
            metadata: Vec::new(),
        }
    }

    fn yes(x: &str) -> bool {
        match XPath::parse(x) {
            Ok(p) => p.matches(&obj()),
            Err(e) => panic!("{x}: {e}"),
        }
    }

    fn bad(x: &str, fragment: &str) {
        match XPath::parse(x) {
            Ok(p) => panic!("{x} parsed as {p:?}"),
            Err(e) => assert!(e.0.contains(fragment), "{x}: {e}"),
        }
    }

    #[test]
    fn paths_and_predicates() {
        assert!(yes("/mosObj/objSlug"));
        assert!(yes("/mosObj/objGroup"));
        assert!(!yes("/mosObj/mosAbstract"));
        assert!(yes("/mosObj[objType='VIDEO']"));
        assert!(!yes("/mosObj[objType='video']"));
        assert!(yes("/mosObj/objDur[.>500]"));
        assert!(!yes("/mosObj/objDur[. > 750]"));
        assert!(yes("/mosObj/objDur[. >= 750]"));
        assert!(yes("/mosObj/objDur[.<=750]"));
        assert!(yes("/mosObj/objDur[. < 751]"));
        assert!(yes("/mosObj/objType != 'AUDIO'"));
        assert!(yes("//objSlug[contains(., 'news')]"));
        assert!(yes("objSlug = 'Evening news open'"));
        assert!(yes("mosObj/objTB = 50"));
        assert!(yes("/mosObj/objSlug/text() = 'Evening news open'"));
        assert!(yes("/mosObj/objSlug[1]"));
        assert!(!yes("/mosObj/objSlug[2]"));
        assert!(yes("/mosObj/objDur/.. [objID='CLIP-1']"));
        assert!(yes("/mosObj/*[. = 'Clips']"));
        assert!(yes("/mosObj/description = 'Titles & music'"));
        assert!(yes("/"));
    }

    #[test]
    fn functions_and_logic() {
        assert!(yes("contains(objSlug,'news')"));
        assert!(!yes("contains(objSlug,'News')"));
        assert!(yes("starts-with(/mosObj/objID, 'CLIP')"));
        assert!(yes("not(contains(objSlug,'weather'))"));
        assert!(yes("objType='VIDEO' and objDur > 500"));
        assert!(yes("objType='AUDIO' or objDur > 500"));
        assert!(!yes(
            "objType='AUDIO' or (objDur > 500 and objAir = 'NOT READY')"
        ));
        assert!(yes("true()"));
        assert!(!yes("false()"));
        assert!(yes("boolean(objGroup)"));
        assert!(!yes("boolean(mosAbstract)"));
        assert!(yes("number(objDur) = 750"));
        assert!(yes("string(objRev) = '3'"));
        assert!(yes("string-length(objID) = 6"));
        assert!(yes("normalize-space('  a  b ') = 'a b'"));
        assert!(yes("objDur > -1"));
        assert!(yes("/mosObj[objDur > 500][objRev = 3]"));
        assert!(!yes("objSlug > 5"), "NaN comparisons are false");
    }

    #[test]
    fn outside_the_subset() {
        bad("", "empty");
        bad("/mosObj/@objID", "attributes");
        bad("/mosObj/objName", "not in the searchable schema");
        bad("/mosObj/objslug", "not in the searchable schema");
        bad("/objSlug", "start with /mosObj");
        bad("objDur + 1 > 5", "arithmetic");
        bad("objDur * 2", "arithmetic");
        bad("objDur div 2", "arithmetic");
        bad("objSlug | objID", "unions");
        bad("child::objSlug", "axes");
        bad("lower-case(objSlug)", "not supported");
        bad("contains(objSlug)", "arguments");
        bad("$x", "variables");
        bad("/mosObj[objType='VIDEO'", "not closed");
        bad("contains(objSlug, 'x", "not closed");
        bad("/mosObj/", "ends with");
        bad("objSlug objID", "unexpected");
        bad(
            "/mosObj/mosExternalMetadata/mosPayload/x",
            "not in the searchable schema",
        );
        bad(&"(".repeat(100), "nested too deeply");
        bad(&"x".repeat(2000), "longer than");
        bad("#", "unexpected character");
    }

    #[test]
    fn sort_fields() {
        let f = |x: &str| XPath::parse(x).ok().and_then(|p| p.sort_field());
        assert_eq!(f("/mosObj/objSlug"), Some(Field::ObjSlug));
        assert_eq!(f("/mosObj/objDur[. > 5]"), Some(Field::ObjDur));
        assert_eq!(f("/mosObj/objSlug/text()"), Some(Field::ObjSlug));
        assert_eq!(f("/mosObj[objType='VIDEO']"), Some(Field::ObjType));
        assert_eq!(f("contains(objGroup,'x')"), Some(Field::ObjGroup));
        assert_eq!(f("true()"), None);
    }
}
