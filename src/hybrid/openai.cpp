#include "hybrid/openai.h"

#include <cmath>
#include <random>

namespace duan::hybrid {

using nlohmann::json;

ApiError bad_request(const std::string& message, const std::string& param,
                     const std::string& code) {
    return ApiError(400, "invalid_request_error", message, code, param);
}

std::string GenRequest::all_text() const {
    if (!chat) return prompt;
    std::string s;
    for (const auto& m : messages) s += m.content + "\n";
    return s;
}

namespace {

// Message content: a string, or an array of {"type":"text","text":...} parts (joined).
std::string content_text(const json& c, const std::string& param) {
    if (c.is_null()) return "";
    if (c.is_string()) return c.get<std::string>();
    if (c.is_array()) {
        std::string s;
        for (const auto& part : c) {
            if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
                !part["text"].is_string())
                throw bad_request("only text content parts are supported", param);
            s += part["text"].get<std::string>();
        }
        return s;
    }
    throw bad_request("content must be a string or an array of text parts", param);
}

double number_in(const json& j, const char* key, double lo, double hi, double def) {
    if (!j.contains(key) || j[key].is_null()) return def;
    const json& v = j[key];
    if (!v.is_number()) throw bad_request(std::string(key) + " must be a number", key);
    double x = v.get<double>();
    if (!std::isfinite(x) || x < lo || x > hi)
        throw bad_request(std::string(key) + " must be in [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "]",
                          key);
    return x;
}

bool bool_field(const json& j, const char* key, bool def) {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_boolean()) throw bad_request(std::string(key) + " must be a boolean", key);
    return j[key].get<bool>();
}

}  // namespace

GenRequest parse_request(std::string_view body, bool chat, const RequestLimits& lim) {
    json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw bad_request("the request body is not valid JSON");
    if (!j.is_object()) throw bad_request("the request body must be a JSON object");

    GenRequest r;
    r.chat = chat;
    size_t text_bytes = 0;
    if (j.contains("model") && !j["model"].is_null()) {
        if (!j["model"].is_string()) throw bad_request("model must be a string", "model");
        r.model = j["model"].get<std::string>();
        if (r.model.size() > lim.max_model_name) throw bad_request("model name too long", "model");
    }
    if (chat) {
        if (!j.contains("messages"))
            throw bad_request("missing required field: messages", "messages");
        const json& msgs = j["messages"];
        if (!msgs.is_array() || msgs.empty())
            throw bad_request("messages must be a non-empty array", "messages");
        if (msgs.size() > lim.max_messages) throw bad_request("too many messages", "messages");
        for (size_t i = 0; i < msgs.size(); ++i) {
            const std::string p = "messages[" + std::to_string(i) + "]";
            const json& m = msgs[i];
            if (!m.is_object()) throw bad_request(p + " must be an object", p);
            if (!m.contains("role") || !m["role"].is_string())
                throw bad_request(p + ".role must be a string", p + ".role");
            ChatMessage cm;
            cm.role = m["role"].get<std::string>();
            if (cm.role != "system" && cm.role != "user" && cm.role != "assistant" &&
                cm.role != "developer" && cm.role != "tool")
                throw bad_request(p + ".role: unknown role '" + cm.role.substr(0, 32) + "'",
                                  p + ".role");
            if (cm.role == "developer") cm.role = "system";
            cm.content =
                content_text(m.contains("content") ? m["content"] : json(), p + ".content");
            text_bytes += cm.content.size();
            r.messages.push_back(std::move(cm));
        }
    } else {
        if (!j.contains("prompt")) throw bad_request("missing required field: prompt", "prompt");
        const json& p = j["prompt"];
        if (p.is_string()) {
            r.prompt = p.get<std::string>();
        } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
            r.prompt = p[0].get<std::string>();
        } else {
            throw bad_request("prompt must be a string (or an array of one string)", "prompt");
        }
        text_bytes += r.prompt.size();
    }
    if (text_bytes > lim.max_text_bytes)
        throw bad_request("the prompt text is too long", chat ? "messages" : "prompt");

    // max_completion_tokens is the newer name of max_tokens in the chat API.
    for (const char* key : {"max_tokens", "max_completion_tokens"}) {
        if (!j.contains(key) || j[key].is_null()) continue;
        if (!j[key].is_number_integer())
            throw bad_request(std::string(key) + " must be an integer", key);
        int64_t v = j[key].get<int64_t>();
        if (v < 1 || v > lim.max_tokens)
            throw bad_request(
                std::string(key) + " must be in [1, " + std::to_string(lim.max_tokens) + "]", key);
        r.max_tokens = static_cast<int>(v);
    }
    r.temperature = static_cast<float>(number_in(j, "temperature", 0.0, 2.0, 1.0));
    r.top_p = static_cast<float>(number_in(j, "top_p", 0.0, 1.0, 1.0));
    if (j.contains("n") && !j["n"].is_null()) {
        if (!j["n"].is_number_integer() || j["n"].get<int64_t>() != 1)
            throw bad_request("only n=1 is supported", "n");
    }
    if (j.contains("seed") && !j["seed"].is_null()) {
        if (!j["seed"].is_number_integer()) throw bad_request("seed must be an integer", "seed");
        r.seed = j["seed"].is_number_unsigned() ? j["seed"].get<uint64_t>()
                                                : static_cast<uint64_t>(j["seed"].get<int64_t>());
    }
    if (j.contains("stop") && !j["stop"].is_null()) {
        const json& s = j["stop"];
        if (s.is_string()) {
            r.stop.push_back(s.get<std::string>());
        } else if (s.is_array()) {
            if (s.size() > lim.max_stop)
                throw bad_request("at most " + std::to_string(lim.max_stop) + " stop sequences",
                                  "stop");
            for (const auto& x : s) {
                if (!x.is_string())
                    throw bad_request("stop must be a string or an array of strings", "stop");
                r.stop.push_back(x.get<std::string>());
            }
        } else {
            throw bad_request("stop must be a string or an array of strings", "stop");
        }
        for (const auto& x : r.stop) {
            if (x.empty()) throw bad_request("stop sequences must not be empty", "stop");
            if (x.size() > lim.max_stop_bytes) throw bad_request("stop sequence too long", "stop");
        }
    }
    r.stream = bool_field(j, "stream", false);
    if (j.contains("stream_options") && !j["stream_options"].is_null()) {
        if (!j["stream_options"].is_object())
            throw bad_request("stream_options must be an object", "stream_options");
        r.include_usage = bool_field(j["stream_options"], "include_usage", false);
    }
    r.private_request = bool_field(j, "duan_private", false);
    if (j.contains("duan_deadline_ms") && !j["duan_deadline_ms"].is_null())
        r.deadline_ms = number_in(j, "duan_deadline_ms", 1.0, 86400e3, 0.0);
    r.raw = std::move(j);
    return r;
}

std::string error_json(const ApiError& e) {
    json err = {{"message", e.what()},
                {"type", e.type},
                {"param", e.param.empty() ? json() : json(e.param)},
                {"code", e.code.empty() ? json() : json(e.code)}};
    return json{{"error", err}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string make_id(bool chat) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char* hex = "0123456789abcdef";
    std::string s = chat ? "chatcmpl-" : "cmpl-";
    for (int i = 0; i < 24; ++i) s += hex[rng() & 15];
    return s;
}

namespace {
json usage_json(const GenResult& r) {
    return {{"prompt_tokens", r.prompt_tokens},
            {"completion_tokens", r.completion_tokens},
            {"total_tokens", r.prompt_tokens + r.completion_tokens}};
}
std::string sse(const json& j) {
    // Invalid UTF-8 from a model (should not happen: StreamDecoder completes code points) is
    // replaced rather than thrown on.
    return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}
}  // namespace

json response_json(const GenRequest& req, const std::string& id, int64_t created,
                   const std::string& model, const GenResult& r) {
    json choice;
    if (req.chat) {
        choice = {{"index", 0},
                  {"message", {{"role", "assistant"}, {"content", r.text}}},
                  {"logprobs", nullptr},
                  {"finish_reason", r.finish_reason}};
    } else {
        choice = {{"index", 0},
                  {"text", r.text},
                  {"logprobs", nullptr},
                  {"finish_reason", r.finish_reason}};
    }
    return {{"id", id},
            {"object", req.chat ? "chat.completion" : "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({choice})},
            {"usage", usage_json(r)}};
}

ChunkWriter::ChunkWriter(const GenRequest& req, std::string id, int64_t created, std::string model)
    : req_(req), id_(std::move(id)), model_(std::move(model)), created_(created) {}

json ChunkWriter::base() const {
    json j = {{"id", id_},
              {"object", req_.chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created_},
              {"model", model_}};
    if (req_.include_usage) j["usage"] = nullptr;
    return j;
}

std::string ChunkWriter::first() {
    if (!req_.chat) return "";
    json j = base();
    j["choices"] = json::array({{{"index", 0},
                                 {"delta", {{"role", "assistant"}, {"content", ""}}},
                                 {"logprobs", nullptr},
                                 {"finish_reason", nullptr}}});
    return sse(j);
}

std::string ChunkWriter::text(const std::string& delta) {
    if (delta.empty()) return "";
    json j = base();
    if (req_.chat)
        j["choices"] = json::array({{{"index", 0},
                                     {"delta", {{"content", delta}}},
                                     {"logprobs", nullptr},
                                     {"finish_reason", nullptr}}});
    else
        j["choices"] = json::array(
            {{{"index", 0}, {"text", delta}, {"logprobs", nullptr}, {"finish_reason", nullptr}}});
    return sse(j);
}

std::string ChunkWriter::finish(const GenResult& r) {
    json j = base();
    if (req_.chat)
        j["choices"] = json::array({{{"index", 0},
                                     {"delta", json::object()},
                                     {"logprobs", nullptr},
                                     {"finish_reason", r.finish_reason}}});
    else
        j["choices"] = json::array({{{"index", 0},
                                     {"text", ""},
                                     {"logprobs", nullptr},
                                     {"finish_reason", r.finish_reason}}});
    std::string out = sse(j);
    if (req_.include_usage) {
        json u = base();
        u["choices"] = json::array();
        u["usage"] = usage_json(r);
        out += sse(u);
    }
    return out + "data: [DONE]\n\n";
}

std::string ChunkWriter::error(const ApiError& e) {
    return "data: " + error_json(e) + "\n\ndata: [DONE]\n\n";
}

std::vector<std::string> SseParser::feed(std::string_view bytes) {
    std::vector<std::string> out;
    for (char c : bytes) {
        if (c != '\n') {
            if (line_.size() >= max_line_)
                throw ApiError(502, "upstream_error",
                               "upstream SSE line exceeds " + std::to_string(max_line_) + " bytes",
                               "bad_upstream_stream");
            line_ += c;
            continue;
        }
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        if (line_.empty()) {  // blank line: dispatch the event
            if (has_data_) out.push_back(std::move(data_));
            data_.clear();
            has_data_ = false;
        } else if (line_[0] != ':') {  // ':' starts a comment
            std::string_view l = line_;
            size_t colon = l.find(':');
            std::string_view field = l.substr(0, colon);
            std::string_view value = colon == std::string_view::npos ? "" : l.substr(colon + 1);
            if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
            if (field == "data") {
                if (has_data_) data_ += '\n';
                if (data_.size() + value.size() > max_line_)
                    throw ApiError(502, "upstream_error", "upstream SSE event too large",
                                   "bad_upstream_stream");
                data_ += value;
                has_data_ = true;
            }
        }
        line_.clear();
    }
    return out;
}

UpstreamChunk parse_upstream_chunk(const std::string& data) {
    UpstreamChunk c;
    if (data == "[DONE]") {
        c.done = true;
        return c;
    }
    auto bad = [](const std::string& why) {
        return ApiError(502, "upstream_error", "malformed upstream stream: " + why,
                        "bad_upstream_stream");
    };
    json j = json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw bad("event is not a JSON object");
    if (j.contains("error")) {
        std::string msg = "upstream error";
        if (j["error"].is_object() && j["error"].contains("message") &&
            j["error"]["message"].is_string())
            msg += ": " + j["error"]["message"].get<std::string>();
        throw ApiError(502, "upstream_error", msg, "upstream_error");
    }
    if (j.contains("usage") && j["usage"].is_object()) {
        const json& u = j["usage"];
        if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer())
            c.prompt_tokens = u["prompt_tokens"].get<int>();
        if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
            c.completion_tokens = u["completion_tokens"].get<int>();
    }
    if (!j.contains("choices") || !j["choices"].is_array()) throw bad("no choices array");
    if (j["choices"].empty()) return c;  // the usage-only chunk
    const json& ch = j["choices"][0];
    if (!ch.is_object()) throw bad("choice is not an object");
    if (ch.contains("delta")) {
        const json& d = ch["delta"];
        if (!d.is_object()) throw bad("delta is not an object");
        if (d.contains("content") && !d["content"].is_null()) {
            if (!d["content"].is_string()) throw bad("delta.content is not a string");
            c.text = d["content"].get<std::string>();
        }
    } else if (ch.contains("text")) {
        if (!ch["text"].is_string()) throw bad("text is not a string");
        c.text = ch["text"].get<std::string>();
    }
    if (ch.contains("finish_reason") && !ch["finish_reason"].is_null()) {
        if (!ch["finish_reason"].is_string()) throw bad("finish_reason is not a string");
        c.finish_reason = ch["finish_reason"].get<std::string>();
    }
    return c;
}

}  // namespace duan::hybrid
