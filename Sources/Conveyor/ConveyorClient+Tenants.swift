import ConveyorCore
import Foundation

extension ConveyorClient {
    /// Tenants: the namespaces jobs carry, with settings.
    public var tenants: Tenants { Tenants(client: self) }

    /// A tenant is the namespace its jobs carry (``JobOptions/namespace``). A namespace needs no row to be used;
    /// settings stored here change how it is served, and a namespace without them has the defaults (weight 1).
    /// `performer` names who acts (recorded in the tenant's events).
    public struct Tenants: Sendable {
        let client: ConveyorClient

        /// The most a weight can be.
        public static let maximumWeight: Double = 10_000

        /// Sets a tenant's weight: in a fair queue (``ConveyorClient/Queues/setFairness(_:_:by:)``) tenants that
        /// compete for slots get fetches in proportion to their weights (weights 1, 2 and 3 share as 1/6, 2/6 and
        /// 3/6). The default is 1.
        ///
        /// - Throws: `INVALID_NAMESPACE`; `INVALID_WEIGHT` when `weight` is not above 0 and at most 10,000. Nothing
        ///   stored changes then.
        public func set(_ name: String, weight: Double, by performer: String? = nil) async throws {
            try Self.validate(name)
            guard weight.isFinite, weight > 0, weight <= Self.maximumWeight else {
                throw ConveyorError(
                    .invalidWeight,
                    "a tenant's weight must be above 0 and at most 10000, got \(weight)"
                )
            }
            try await self.client.store.setTenant(name, weight: weight, by: performer, logger: self.client.logger)
        }

        /// Lets at most `maxRunning` jobs of a tenant be leased at once, across every queue and worker process, or
        /// removes the limit (`nil`). Enforced when jobs are fetched, as a queue's limit
        /// (``ConveyorClient/Queues/setConcurrencyLimit(_:maxRunning:by:)``): a fetch serves a tenant no more jobs
        /// than it has free slots, and a tenant at its limit does not hold back other tenants' jobs queued behind
        /// its own. Leased jobs count, running or in a worker's prefetch buffer; jobs running when the limit is set
        /// count toward it.
        ///
        /// - Throws: `INVALID_NAMESPACE`; `INVALID_OPTION` when `maxRunning` is outside 1...10,000. Nothing stored
        ///   changes then.
        public func setConcurrencyLimit(_ name: String, maxRunning: Int?, by performer: String? = nil) async throws {
            try Self.validate(name)
            if let maxRunning, !(1...10_000).contains(maxRunning) {
                throw ConveyorError(
                    .invalidOption,
                    "a concurrency limit must be between 1 and 10000, got \(maxRunning)"
                )
            }
            try await self.client.store.setTenantConcurrencyLimit(
                name,
                maxRunning: maxRunning,
                by: performer,
                logger: self.client.logger
            )
        }

        /// Deletes a tenant's settings: its namespace has the defaults again. Returns `false` when it had none.
        @discardableResult
        public func remove(_ name: String, by performer: String? = nil) async throws -> Bool {
            try Self.validate(name)
            return try await self.client.store.removeTenant(name, by: performer, logger: self.client.logger)
        }

        /// Every tenant with settings, by name.
        public func list() async throws -> [TenantInfo] {
            try await self.client.store.tenants(logger: self.client.logger)
        }

        /// One tenant's settings; `nil` when its namespace has the defaults.
        public func get(_ name: String) async throws -> TenantInfo? {
            try Self.validate(name)
            return try await self.client.store.tenant(named: name, logger: self.client.logger)
        }

        /// The most recent `limit` events of a tenant (settings set and removed), oldest first.
        public func events(_ name: String, limit: Int = 50) async throws -> [EventRecord] {
            try Self.validate(name)
            return try await self.client.store.events(for: .tenant(name), limit: limit, logger: self.client.logger)
        }

        static func validate(_ name: String) throws {
            if let violation = NameValidation.checkLabel(name) {
                throw ConveyorError(.invalidNamespace, "invalid namespace: \(violation.explanation)")
            }
        }
    }
}

/// A tenant's stored settings (see ``ConveyorClient/Tenants``).
public struct TenantInfo: Sendable, Hashable {
    /// The namespace.
    public var name: String
    /// Its share of a fair queue's fetches relative to the other tenants competing (default 1).
    public var weight: Double
    /// The most of its jobs leased at once across every queue, or `nil` for no limit.
    public var maxRunning: Int?
    /// Its jobs leased now, counted from its slots: `nil` without a limit.
    public var running: Int?
    public var updatedAt: Date
    /// Who set it last (see ``EventRecord/performedBy``).
    public var updatedBy: String?

    public init(
        name: String,
        weight: Double,
        maxRunning: Int? = nil,
        running: Int? = nil,
        updatedAt: Date,
        updatedBy: String?
    ) {
        self.name = name
        self.weight = weight
        self.maxRunning = maxRunning
        self.running = running
        self.updatedAt = updatedAt
        self.updatedBy = updatedBy
    }
}
