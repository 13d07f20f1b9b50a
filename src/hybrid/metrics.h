// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
// exposition format (version 0.0.4) for GET /metrics. Thread-safe.
#pragma once
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace duan::hybrid {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
  public:
    Metrics();
    void describe(const std::string& name, const std::string& type, const std::string& help);
    void inc(const std::string& name, const Labels& labels = {}, double v = 1);
    void set(const std::string& name, const Labels& labels, double v);
    // Histogram observation; buckets from describe_histogram (default: latency seconds).
    void observe(const std::string& name, const Labels& labels, double v);
    void describe_histogram(const std::string& name, const std::string& help,
                            std::vector<double> buckets);
    // Called at render time to refresh gauges (queue depth, active sequences, device state).
    void on_render(std::function<void(Metrics&)> fn);
    std::string render();
    double value(const std::string& name, const Labels& labels = {}) const;  // counters/gauges

  private:
    struct Hist {
        std::vector<double> counts;  // per bucket (non-cumulative), + Inf
        double sum = 0;
        uint64_t count = 0;
    };
    struct Family {
        std::string type, help;
        std::vector<double> buckets;
        std::map<Labels, double> values;
        std::map<Labels, Hist> hists;
    };
    Family& family(const std::string& name, const char* type);
    mutable std::mutex mu_;
    std::map<std::string, Family> fams_;
    std::vector<std::function<void(Metrics&)>> renderers_;
};

}  // namespace duan::hybrid
