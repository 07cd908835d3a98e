import Foundation

/// What `conveyor bench` prints: figures with median, min and max over the runs, beside the SQL ceiling.
struct BenchReport: Codable {
    struct Machine: Codable {
        var cores: Int
        var memoryGiB: Double
        var loadAverageBefore: String
        var loadAverageAfter: String

        static func current() -> Machine {
            Machine(
                cores: ProcessInfo.processInfo.activeProcessorCount,
                memoryGiB: (Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824 * 10).rounded() / 10,
                loadAverageBefore: Self.loadAverage(),
                loadAverageAfter: ""
            )
        }

        static func loadAverage() -> String {
            let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
            return text.split(separator: " ").prefix(3).joined(separator: " ")
        }
    }

    struct Figure: Codable {
        var name: String
        var unit: String
        var median: Double
        var min: Double
        var max: Double
        var ceiling: Double?
        var ceilingName: String?
        /// The median as a fraction of the ceiling.
        var share: Double?
    }

    var machine: Machine
    var settings: [String: String]
    var notes: [String]
    var figures: [Figure] = []
    var ceiling: [String: Double] = [:]

    mutating func summarize(_ runs: [[Measurement]]) {
        var order: [String] = []
        var values: [String: (unit: String, values: [Double])] = [:]
        for run in runs {
            for measurement in run {
                if values[measurement.name] == nil {
                    order.append(measurement.name)
                    values[measurement.name] = (measurement.unit, [])
                }
                values[measurement.name]?.values.append(measurement.value)
            }
        }
        self.figures = order.compactMap { name in
            guard let entry = values[name], !entry.values.isEmpty else { return nil }
            let sorted = entry.values.sorted()
            let median =
                sorted.count % 2 == 1
                ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            return Figure(
                name: name,
                unit: entry.unit,
                median: median,
                min: sorted.first ?? 0,
                max: sorted.last ?? 0
            )
        }
    }

    /// Which ceiling figure each of ours is read against.
    static let ceilingFor: [(prefix: String, key: String)] = [
        ("W1 drain", "claim_complete_batch100_jobs_per_s"),
        ("W4 drain", "claim_complete_batch100_jobs_per_s"),
        ("W1 enqueue, batches", "insert_per_s"),
        ("W4 enqueue, batches", "insert_per_s"),
        ("W1 enqueue, one per call", "insert_per_s"),
    ]

    mutating func applyCeiling(_ ceiling: [String: Double]) {
        self.ceiling = ceiling
        for index in self.figures.indices {
            guard let match = Self.ceilingFor.first(where: { self.figures[index].name.hasPrefix($0.prefix) }),
                let value = ceiling[match.key], value > 0
            else { continue }
            self.figures[index].ceiling = value
            self.figures[index].ceilingName = match.key
            self.figures[index].share = self.figures[index].median / value
        }
    }

    func printTable() {
        for note in self.notes { print("NOTE: \(note)") }
        print(
            "machine: \(self.machine.cores) cores, \(self.machine.memoryGiB) GiB; load average "
                + "\(self.machine.loadAverageBefore) before, \(self.machine.loadAverageAfter) after"
        )
        print(
            "settings: "
                + self.settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        )
        print("")
        let header =
            "figure".padding(Self.nameWidth) + " " + "median".leftPadding(12) + " " + "min".leftPadding(12) + " "
            + "max".leftPadding(12) + "  unit".padding(11) + " ceiling share"
        print(header)
        print(String(repeating: "-", count: header.count))
        for figure in self.figures {
            var line =
                figure.name.padding(Self.nameWidth) + " " + Self.format(figure.median).leftPadding(12) + " "
                + Self.format(figure.min).leftPadding(12) + " " + Self.format(figure.max).leftPadding(12) + "  "
                + figure.unit.padding(9)
            if let share = figure.share, let ceiling = figure.ceiling {
                line += " " + String(format: "%.0f%% of %.0f", share * 100, ceiling)
            }
            print(line)
        }
        if !self.ceiling.isEmpty {
            print("")
            print("SQL ceiling (pgbench, 8 clients, same server):")
            for (key, value) in self.ceiling.sorted(by: { $0.key < $1.key }) {
                print("  \(key) = \(Self.format(value))")
            }
        }
    }

    /// The figure column: the longest name, "W1 enqueue, batches of 1000 from 4 tasks", and a space.
    static let nameWidth = 41

    static func format(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : String(format: "%.2f", value)
    }
}

extension String {
    func leftPadding(_ width: Int) -> String {
        self.count >= width ? self : String(repeating: " ", count: width - self.count) + self
    }
}
