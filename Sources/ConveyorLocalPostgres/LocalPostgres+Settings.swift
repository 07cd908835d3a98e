extension LocalPostgres {
    /// Server configuration passed to `postgres` as `-c name=value` options at every start.
    ///
    /// Nothing is written to `postgresql.conf`, so a persistent cluster takes whatever settings its latest start
    /// was given. `listen_addresses`, `port` and `unix_socket_directories` are always chosen by `LocalPostgres`
    /// and cannot be overridden.
    public struct Settings: Sendable, Equatable {
        /// Whether committed data must survive an operating-system crash. Default `false`.
        ///
        /// `false` (tests) sets `fsync=off`, `synchronous_commit=off` and `full_page_writes=off`: much faster, but
        /// transactions committed in the last fraction of a second (`wal_writer_delay`) are lost when the server
        /// is killed or stopped with `stopImmediately()`, and an operating-system crash can corrupt the cluster.
        /// `true` (benchmarks, `conveyor dev`) sets `fsync=on`, `synchronous_commit=on` and
        /// `full_page_writes=on`.
        public var durable: Bool
        /// `shared_buffers`. Default `"128MB"`.
        public var sharedBuffers: String
        /// `max_connections`. Default `200`.
        public var maxConnections: Int
        /// Further `postgresql.conf` settings, passed as `-c name=value`; an entry for one of the settings above
        /// replaces it. Default empty.
        public var extra: [String: String]

        /// Creates settings; every argument has the documented default.
        public init(
            durable: Bool = false,
            sharedBuffers: String = "128MB",
            maxConnections: Int = 200,
            extra: [String: String] = [:]
        ) {
            self.durable = durable
            self.sharedBuffers = sharedBuffers
            self.maxConnections = maxConnections
            self.extra = extra
        }

        /// The settings names and values in the order they are passed, before the ones the cluster fixes.
        var serverParameters: [(name: String, value: String)] {
            let durability = durable ? "on" : "off"
            var parameters: [(name: String, value: String)] = [
                ("fsync", durability),
                ("synchronous_commit", durability),
                ("full_page_writes", durability),
                ("shared_buffers", sharedBuffers),
                ("max_connections", String(maxConnections)),
            ]
            parameters = parameters.map { parameter in
                (parameter.name, extra[parameter.name] ?? parameter.value)
            }
            let taken = Set(parameters.map(\.name)).union(["listen_addresses", "port", "unix_socket_directories"])
            for (name, value) in extra.sorted(by: { $0.key < $1.key }) where !taken.contains(name) {
                parameters.append((name, value))
            }
            return parameters
        }
    }
}
