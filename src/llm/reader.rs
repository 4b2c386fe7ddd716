//! The response side of an LLM request, for the filter: one reader per response, chosen by its
//! content type, fed every body chunk as it streams to the client. Invariant: the usage it
//! returns is the one the whole body reports (whatever its size and however it is split), its
//! memory stays bounded, and it changes what the client receives only to withhold the
//! usage-only stream chunk that Tollgate itself caused (`strip_added_usage`).

use super::json_scan::JsonScanner;
use super::sse::SseReader;
use super::usage::Usage;

pub use super::sse::Forward;

/// How a response body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// One JSON document (or a top-level array of them, e.g. Gemini's streamGenerateContent
    /// without `alt=sse`); also anything that is not an event stream.
    Json,
    /// `text/event-stream`.
    Sse,
}

impl BodyKind {
    pub fn of_content_type(content_type: &str) -> BodyKind {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("text/event-stream") {
            BodyKind::Sse
        } else {
            BodyKind::Json
        }
    }
}

/// Reads the usage of one response, and withholds the usage chunk Tollgate caused.
pub struct ResponseReader {
    body: Body,
}

/// Boxed: a reader is about 1 KB, kept for the life of the response (one allocation).
enum Body {
    Json(Box<JsonScanner>),
    Sse(Box<SseReader>),
}

impl ResponseReader {
    /// `strip_added_usage`: Tollgate added `stream_options.include_usage` to the request, so
    /// the usage-only chunk of an event stream is withheld from the client (a JSON body is
    /// never changed).
    pub fn new(kind: BodyKind, strip_added_usage: bool) -> ResponseReader {
        let body = match kind {
            BodyKind::Json => Body::Json(Box::default()),
            BodyKind::Sse => Body::Sse(Box::new(SseReader::new(strip_added_usage))),
        };
        ResponseReader { body }
    }

    /// The reader for a response with this content type, if it has a job: reading usage
    /// (`reads_usage`: the request holds token or cost charges) or withholding the usage chunk
    /// of a stream (`include_usage_added`).
    pub fn for_response(content_type: &str, reads_usage: bool, include_usage_added: bool) -> Option<ResponseReader> {
        let kind = BodyKind::of_content_type(content_type);
        let strip = include_usage_added && kind == BodyKind::Sse;
        (reads_usage || strip).then(|| ResponseReader::new(kind, strip))
    }

    /// Whether the body may be changed (the filter then drops the response's content-length).
    pub fn may_change_body(&self) -> bool {
        matches!(&self.body, Body::Sse(s) if s.strips())
    }

    /// Read the next body chunk: what to send on in its place.
    pub fn feed(&mut self, chunk: &[u8], end_of_stream: bool) -> Forward<'_> {
        match &mut self.body {
            Body::Json(scanner) => {
                scanner.feed(chunk);
                Forward::Unchanged
            }
            Body::Sse(sse) => sse.feed(chunk, end_of_stream),
        }
    }

    /// Usage values skipped because they were larger than the capture cap.
    pub fn oversized(&self) -> u32 {
        match &self.body {
            Body::Json(scanner) => scanner.oversized(),
            Body::Sse(sse) => sse.oversized(),
        }
    }

    /// The body ended (or the stream was cut): the usage it reported (empty when none).
    pub fn finish(self) -> Usage {
        match self.body {
            Body::Json(mut scanner) => scanner.finish_text(),
            Body::Sse(sse) => (*sse).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_type_chooses_the_reader() {
        for sse in [
            "text/event-stream",
            "text/event-stream; charset=utf-8",
            "Text/Event-Stream;charset=UTF-8",
            " text/event-stream ",
        ] {
            assert_eq!(BodyKind::of_content_type(sse), BodyKind::Sse, "{sse}");
        }
        for json in ["application/json", "application/json; charset=UTF-8", "", "text/plain", "text/event-streams"] {
            assert_eq!(BodyKind::of_content_type(json), BodyKind::Json, "{json}");
        }
    }

    #[test]
    fn a_reader_exists_only_when_it_has_a_job_and_strips_only_streams() {
        assert!(ResponseReader::for_response("application/json", false, false).is_none());
        assert!(ResponseReader::for_response("text/event-stream", false, false).is_none());
        let json = ResponseReader::for_response("application/json", true, true).unwrap();
        assert!(!json.may_change_body(), "a JSON body is never changed");
        assert!(ResponseReader::for_response("application/json", false, true).is_none());
        let stream = ResponseReader::for_response("text/event-stream", false, true).unwrap();
        assert!(stream.may_change_body(), "a stream whose usage chunk Tollgate caused, even without token rules");
        assert!(!ResponseReader::for_response("text/event-stream", true, false).unwrap().may_change_body());
    }

    #[test]
    fn json_bodies_are_read_whole_or_split_and_never_changed() {
        let body = br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        for cut in 0..=body.len() {
            let mut r = ResponseReader::new(BodyKind::Json, true);
            assert_eq!(r.feed(&body[..cut], false), Forward::Unchanged);
            assert_eq!(r.feed(&body[cut..], true), Forward::Unchanged);
            assert_eq!(r.finish().total_tokens(), 7);
        }
        // A Gemini stream without alt=sse: one JSON array, the last usage wins.
        let array =
            b"[{\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":1,\"totalTokenCount\":5}}\r\n,\
{\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":6,\"totalTokenCount\":10}}]";
        let mut r = ResponseReader::new(BodyKind::Json, false);
        for piece in array.chunks(3) {
            r.feed(piece, false);
        }
        let u = r.finish();
        assert_eq!((u.input_tokens(), u.output_tokens(), u.total_tokens()), (4, 6, 10));
    }

    #[test]
    fn a_stream_reader_reads_and_strips() {
        let stream =
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        let mut r = ResponseReader::new(BodyKind::Sse, true);
        assert_eq!(r.feed(stream, true), Forward::Replace(b"data: [DONE]\n\n"));
        assert_eq!(r.oversized(), 0);
        assert_eq!(r.finish().total_tokens(), 3);
    }
}
