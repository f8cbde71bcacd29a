//! YAML text to a tree of nodes that remember where they were written.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};

use super::errors::{ConfigError, Position};

/// Deeper nesting than any config needs; guards the recursive descent.
const MAX_DEPTH: usize = 64;

/// Nodes in one document, aliases counted expanded; guards against alias
/// bombs.
const MAX_NODES: usize = 100_000;

/// A YAML node and where it starts.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub position: Position,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub(super) enum NodeKind {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    /// Entries in the order written.
    Mapping(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub(super) struct Scalar {
    pub text: String,
    /// Plain (unquoted, not a block scalar): its type comes from its text.
    pub plain: bool,
    pub tag: Option<Tag>,
}

impl Node {
    fn size(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar(_) => 1,
            NodeKind::Sequence(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            NodeKind::Mapping(entries) => {
                let entries = entries.iter().map(|(k, v)| k.size() + v.size());
                1 + entries.sum::<usize>()
            }
        }
    }
}

/// Parses `text`, which must hold at most one YAML document. `None` for a
/// file with no document (empty, or only comments).
pub(super) fn parse(text: &str) -> Result<Option<Node>, ConfigError> {
    let builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    builder.stream().map_err(|error| within(error, text))
}

/// Moves an error the parser placed past the end of the text (an unexpected
/// end) to the text's last character.
fn within(mut error: ConfigError, text: &str) -> ConfigError {
    let lines = text.split('\n').count();
    let last = text.rsplit('\n').next().unwrap_or_default();
    let end = Position {
        line: lines,
        column: last.chars().count().max(1),
    };
    error.position = error.position.map(|position| position.min(end));
    error
}

struct Builder<'i> {
    parser: Parser<'i, StrInput<'i>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl<'i> Builder<'i> {
    fn stream(mut self) -> Result<Option<Node>, ConfigError> {
        let mut root = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::DocumentStart(_) if root.is_some() => {
                    return Err(error(
                        span.start,
                        "a config file holds one YAML document; this starts a second one",
                    ));
                }
                Event::DocumentStart(_) => {
                    let (event, span) = self.next()?;
                    root = Some(self.node(event, span, 0)?);
                }
                Event::StreamEnd => return Ok(root),
                _ => {}
            }
        }
    }

    fn next(&mut self) -> Result<(Event<'i>, Span), ConfigError> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(scan)) => Err(syntax(&scan)),
            // The parser ends every stream with `StreamEnd`, after which
            // `stream` stops asking.
            None => unreachable!("the YAML parser was asked for events after the stream end"),
        }
    }

    fn node(&mut self, event: Event<'i>, span: Span, depth: usize) -> Result<Node, ConfigError> {
        if depth > MAX_DEPTH {
            let message = format!("nested deeper than {MAX_DEPTH} levels");
            return Err(error(span.start, &message));
        }
        let position = position(span.start);

        let (anchor, kind) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let scalar = Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                    tag: tag.map(|tag| tag.into_owned()),
                };
                (anchor, NodeKind::Scalar(scalar))
            }
            Event::SequenceStart(anchor, _) => (anchor, self.sequence(depth)?),
            Event::MappingStart(anchor, _) => (anchor, self.mapping(depth)?),
            Event::Alias(anchor) => return self.alias(anchor, span),
            // Document and stream events never come where a node is due.
            _ => unreachable!("the YAML parser emitted a non-node event where a node was due"),
        };

        let node = Node { position, kind };
        self.count(1, span)?;
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn sequence(&mut self, depth: usize) -> Result<NodeKind, ConfigError> {
        let mut items = Vec::new();
        loop {
            match self.next()? {
                (Event::SequenceEnd, _) => return Ok(NodeKind::Sequence(items)),
                (event, span) => items.push(self.node(event, span, depth + 1)?),
            }
        }
    }

    fn mapping(&mut self, depth: usize) -> Result<NodeKind, ConfigError> {
        let mut entries = Vec::new();
        loop {
            let key = match self.next()? {
                (Event::MappingEnd, _) => return Ok(NodeKind::Mapping(entries)),
                (event, span) => self.node(event, span, depth + 1)?,
            };
            let (event, span) = self.next()?;
            let value = self.node(event, span, depth + 1)?;
            entries.push((key, value));
        }
    }

    /// A copy of the anchored node, placed where the alias is.
    fn alias(&mut self, anchor: usize, span: Span) -> Result<Node, ConfigError> {
        // The parser rejects aliases to unknown anchors itself.
        let Some(node) = self.anchors.get(&anchor) else {
            return Err(error(span.start, "alias to an unknown anchor"));
        };
        let mut node = node.clone();
        node.position = position(span.start);
        self.count(node.size(), span)?;
        Ok(node)
    }

    fn count(&mut self, nodes: usize, span: Span) -> Result<(), ConfigError> {
        self.nodes += nodes;
        if self.nodes > MAX_NODES {
            let message = format!("more than {MAX_NODES} YAML nodes, aliases expanded");
            return Err(error(span.start, &message));
        }
        Ok(())
    }
}

fn position(marker: Marker) -> Position {
    Position {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

fn error(marker: Marker, message: &str) -> ConfigError {
    ConfigError {
        path: String::new(),
        position: Some(position(marker)),
        value: None,
        message: message.to_owned(),
    }
}

fn syntax(scan: &ScanError) -> ConfigError {
    error(*scan.marker(), &format!("invalid YAML: {}", scan.info()))
}
