#include "hybrid/metrics.h"

#include <cmath>
#include <sstream>

namespace duan::hybrid {

namespace {
const std::vector<double> kLatencyBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,   30,  60,   120};

std::string escape(const std::string& v) {
    std::string s;
    for (char c : v) {
        if (c == '\\' || c == '"') s += '\\';
        if (c == '\n') {
            s += "\\n";
            continue;
        }
        s += c;
    }
    return s;
}

std::string fmt_labels(const Labels& l, const std::string& extra = "") {
    if (l.empty() && extra.empty()) return "";
    std::string s = "{";
    for (size_t i = 0; i < l.size(); ++i) {
        if (i) s += ",";
        s += l[i].first + "=\"" + escape(l[i].second) + "\"";
    }
    if (!extra.empty()) s += (l.empty() ? "" : ",") + extra;
    return s + "}";
}

std::string num(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    std::ostringstream os;
    os.precision(10);
    os << v;
    return os.str();
}
}  // namespace

Metrics::Metrics() = default;

Metrics::Family& Metrics::family(const std::string& name, const char* type) {
    auto it = fams_.find(name);
    if (it == fams_.end()) {
        it = fams_.emplace(name, Family{}).first;
        it->second.type = type;
        if (std::string(type) == "histogram") it->second.buckets = kLatencyBuckets;
    }
    return it->second;
}

void Metrics::describe(const std::string& name, const std::string& type, const std::string& help) {
    std::lock_guard<std::mutex> lk(mu_);
    Family& f = family(name, type.c_str());
    f.type = type;
    f.help = help;
}

void Metrics::describe_histogram(const std::string& name, const std::string& help,
                                 std::vector<double> buckets) {
    std::lock_guard<std::mutex> lk(mu_);
    Family& f = family(name, "histogram");
    f.help = help;
    f.buckets = std::move(buckets);
}

void Metrics::inc(const std::string& name, const Labels& labels, double v) {
    std::lock_guard<std::mutex> lk(mu_);
    family(name, "counter").values[labels] += v;
}

void Metrics::set(const std::string& name, const Labels& labels, double v) {
    std::lock_guard<std::mutex> lk(mu_);
    family(name, "gauge").values[labels] = v;
}

void Metrics::observe(const std::string& name, const Labels& labels, double v) {
    std::lock_guard<std::mutex> lk(mu_);
    Family& f = family(name, "histogram");
    Hist& h = f.hists[labels];
    if (h.counts.empty()) h.counts.assign(f.buckets.size() + 1, 0);
    size_t b = 0;
    while (b < f.buckets.size() && v > f.buckets[b]) ++b;
    h.counts[b] += 1;
    h.sum += v;
    h.count++;
}

void Metrics::on_render(std::function<void(Metrics&)> fn) {
    std::lock_guard<std::mutex> lk(mu_);
    renderers_.push_back(std::move(fn));
}

double Metrics::value(const std::string& name, const Labels& labels) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = fams_.find(name);
    if (it == fams_.end()) return 0;
    auto v = it->second.values.find(labels);
    return v == it->second.values.end() ? 0 : v->second;
}

std::string Metrics::render() {
    std::vector<std::function<void(Metrics&)>> rs;
    {
        std::lock_guard<std::mutex> lk(mu_);
        rs = renderers_;
    }
    for (auto& r : rs) r(*this);
    std::lock_guard<std::mutex> lk(mu_);
    std::ostringstream os;
    for (const auto& [name, f] : fams_) {
        if (!f.help.empty()) os << "# HELP " << name << " " << f.help << "\n";
        os << "# TYPE " << name << " " << f.type << "\n";
        for (const auto& [l, v] : f.values) os << name << fmt_labels(l) << " " << num(v) << "\n";
        for (const auto& [l, h] : f.hists) {
            double cum = 0;
            for (size_t b = 0; b <= f.buckets.size(); ++b) {
                cum += h.counts[b];
                std::string le = b < f.buckets.size() ? num(f.buckets[b]) : "+Inf";
                os << name << "_bucket" << fmt_labels(l, "le=\"" + le + "\"") << " " << num(cum)
                   << "\n";
            }
            os << name << "_sum" << fmt_labels(l) << " " << num(h.sum) << "\n";
            os << name << "_count" << fmt_labels(l) << " " << h.count << "\n";
        }
    }
    return os.str();
}

}  // namespace duan::hybrid
