// OpenAI's JSON wire format: request parsing/validation, response bodies, streamed chunks (SSE),
// error bodies, and a parser for the SSE stream an upstream OpenAI-compatible server sends.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hybrid/api_types.h"

namespace duan::hybrid {

// Caps on everything a client controls in a request body (the HTTP layer caps the body size).
struct RequestLimits {
    size_t max_messages = 512;
    size_t max_text_bytes = 4u << 20;  // all prompt/message text together
    size_t max_stop = 4;               // as OpenAI
    size_t max_stop_bytes = 256;
    int max_tokens = 1 << 20;
    size_t max_model_name = 256;
};

// Parses and validates a /v1/chat/completions (chat=true) or /v1/completions body. Throws ApiError
// (400, with "param" naming the field) for malformed JSON, wrong types or out-of-range values.
GenRequest parse_request(std::string_view body, bool chat, const RequestLimits& limits = {});

// {"error": {"message", "type", "param", "code"}}
std::string error_json(const ApiError& e);

// A fresh response id such as "chatcmpl-3f9a..." (random, not guessable across requests).
std::string make_id(bool chat);

// The non-streamed response body.
nlohmann::json response_json(const GenRequest& req, const std::string& id, int64_t created,
                             const std::string& model, const GenResult& r);

// Builds the SSE events of one streamed response, exactly as OpenAI sends them: each is
// "data: {json}\n\n"; the last is "data: [DONE]\n\n".
class ChunkWriter {
  public:
    ChunkWriter(const GenRequest& req, std::string id, int64_t created, std::string model);
    std::string first();  // chat: the role delta; completions: ""
    std::string text(const std::string& delta);
    std::string finish(const GenResult& r);  // finish_reason chunk, usage chunk if asked, [DONE]
    // An error midway: OpenAI's error object as a data event, then [DONE].
    static std::string error(const ApiError& e);

  private:
    nlohmann::json base() const;
    const GenRequest& req_;
    std::string id_, model_;
    int64_t created_;
};

// Incremental parser of a text/event-stream body. feed() returns the data payloads of the events
// completed by these bytes (multi-line data joined by '\n'); comments and other fields are skipped.
// Throws ApiError(502) when a line exceeds max_line bytes.
class SseParser {
  public:
    explicit SseParser(size_t max_line = 1u << 20) : max_line_(max_line) {}
    std::vector<std::string> feed(std::string_view bytes);

  private:
    size_t max_line_;
    std::string line_, data_;
    bool has_data_ = false;
};

// One upstream chunk, interpreted. Throws ApiError(502) for JSON that is not an OpenAI chunk, and
// for an upstream error object.
struct UpstreamChunk {
    bool done = false;  // "[DONE]"
    std::string text;   // delta.content (chat) or text (completions)
    std::optional<std::string> finish_reason;
    std::optional<int> prompt_tokens, completion_tokens;
};
UpstreamChunk parse_upstream_chunk(const std::string& data);

}  // namespace duan::hybrid
