// The request/response vocabulary shared by the server, the router and the backends. Nothing here
// knows about HTTP: the server turns ApiError into a status code plus OpenAI's error JSON.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace duan::hybrid {

// An error a client should see, with the HTTP status and OpenAI's error "type"/"code"/"param".
struct ApiError : std::runtime_error {
    int status;
    std::string type;   // invalid_request_error, authentication_error, rate_limit_error, ...
    std::string code;   // machine-readable detail ("context_length_exceeded", "queue_full", ...)
    std::string param;  // the offending request field, "" if none
    int retry_after_s = 0;  // > 0: send Retry-After
    ApiError(int status_, std::string type_, std::string message, std::string code_ = "",
             std::string param_ = "")
        : std::runtime_error(std::move(message)),
          status(status_),
          type(std::move(type_)),
          code(std::move(code_)),
          param(std::move(param_)) {}
};

ApiError bad_request(const std::string& message, const std::string& param = "",
                     const std::string& code = "");

struct ChatMessage {
    std::string role;
    std::string content;
};

// One generation request, after validation (openai.h parses it from the client's JSON).
struct GenRequest {
    bool chat = true;                   // /v1/chat/completions vs /v1/completions
    std::string model;                  // as the client named it ("" if absent)
    std::vector<ChatMessage> messages;  // chat only
    std::string prompt;                 // completions only
    int max_tokens = -1;                // -1: until end of generation or the context is full
    float temperature = 1.0f;           // OpenAI's default
    float top_p = 1.0f;
    std::optional<uint64_t> seed;
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;         // stream_options.include_usage
    bool private_request = false;       // "duan_private": never leaves the device
    std::optional<double> deadline_ms;  // "duan_deadline_ms": answer wanted within this time
    nlohmann::json raw = nlohmann::json::object();  // the body as sent (forwarded to the cloud)

    // All the user-visible text of the request (for PII and complexity checks).
    std::string all_text() const;
};

// The outcome of a finished generation.
struct GenResult {
    std::string text;
    std::string finish_reason = "stop";  // "stop" | "length"
    int prompt_tokens = 0;
    int completion_tokens = 0;
};

// Where a request ran and why (X-Duan-Route header, metrics).
struct RouteInfo {
    bool cloud = false;
    std::string reason;
    std::string header() const {
        return std::string(cloud ? "cloud" : "local") + "; reason=" + reason;
    }
};

}  // namespace duan::hybrid
