import Conveyor
import ConveyorCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// The admin HTTP API as a Hummingbird `RouteCollection` that a host application mounts, or that `conveyor serve`
/// runs alone:
///
/// ```swift
/// let admin = try ConveyorAdminAPI(client: conveyor, configuration: .init(tokens: [APIToken(name: "ops", secret: s)]))
/// let router = Router()
/// router.addRoutes(admin.routes(), atPath: "/conveyor/api")
/// ```
///
/// Every route but `GET /health` and `GET /ready` requires a token (`Authorization: Bearer <secret>` or
/// `x-api-key: <secret>`), compared in constant time; operator actions record `token:<name>` in the timeline.
/// Routes, methods and their documentation come from one table (``routeTable``), which `/openapi.json` is built from.
public struct ConveyorAdminAPI: Sendable {
    /// Settings; every `var` has a documented default.
    public struct Configuration: Sendable {
        /// The tokens that may call the API. At least one is required: the API never runs open.
        public var tokens: [APIToken]
        /// The largest request body read (default 2 MiB: a job's arguments are capped at 1 MiB by the client).
        public var maximumBodyBytes: Int = 2 << 20
        /// The swift-metrics registry that `GET /metrics/prom` emits before its own gauges, when the host
        /// bootstrapped `MetricsSystem` with a `PrometheusMetricsFactory` on it (default none: only the gauges).
        public var prometheus: PrometheusCollectorRegistry?
        /// How long `GET /metrics` and `GET /metrics/prom` reuse one read of the database (default 2 s), so that
        /// dashboards and scrapers cost one read per interval however many there are.
        public var metricsCacheInterval: Duration = .seconds(2)
        /// Where the routes are mounted as clients reach them: the server URL that `GET /openapi.json` names
        /// (default `/api`, as `conveyor serve` mounts them).
        public var mountPath: String = "/api"

        public init(tokens: [APIToken]) {
            self.tokens = tokens
        }
    }

    public let client: ConveyorClient
    public let configuration: Configuration
    let metricsCache: MetricsCache

    /// - Throws: `INVALID_CONFIGURATION` when no token is configured.
    public init(client: ConveyorClient, configuration: Configuration) throws {
        guard !configuration.tokens.isEmpty else {
            throw ConveyorError(.invalidConfiguration, "the admin API needs at least one token (CONVEYOR_API_TOKEN)")
        }
        guard (1024...(64 << 20)).contains(configuration.maximumBodyBytes) else {
            throw ConveyorError(.invalidConfiguration, "maximumBodyBytes must be between 1 KiB and 64 MiB")
        }
        self.client = client
        self.configuration = configuration
        self.metricsCache = MetricsCache(interval: configuration.metricsCacheInterval)
    }

    /// The routes, for any request context.
    public func routes<Context: RequestContext>(
        context: Context.Type = BasicRequestContext.self
    )
        -> RouteCollection<Context>
    {
        let routes = RouteCollection(context: Context.self)
        for route in Self.routeTable {
            let handler = route.handler
            routes.on(RouterPath(route.path), method: route.method) { request, context in
                try await self.respond(request, context: context, route: route, handler: handler)
            }
        }
        return routes
    }

    /// Runs one route: authentication, the body, the handler, and errors as responses.
    private func respond(
        _ request: Request,
        context: some RequestContext,
        route: Route,
        handler: @Sendable (Call) async throws -> APIResponse
    ) async throws -> Response {
        do {
            let performer = route.isPublic ? nil : try self.authenticate(request)
            var body: [UInt8] = []
            if route.method == .post || route.method == .put {
                do {
                    let buffer = try await request.body.collect(upTo: self.configuration.maximumBodyBytes)
                    body = Array(buffer.readableBytesView)
                } catch is NIOTooManyBytesError {
                    throw ConveyorHTTPError(
                        .contentTooLarge,
                        code: ConveyorHTTPError.Code.bodyTooLarge,
                        "the body is larger than \(self.configuration.maximumBodyBytes) bytes"
                    )
                }
            }
            let call = Call(
                api: self,
                parameters: { name in context.parameters.get(name) },
                query: APIQuery(request.uri.queryParameters.map { (key: $0.key, value: $0.value) }),
                body: body,
                performer: performer
            )
            let response = try await handler(call)
            var headers = HTTPFields()
            headers[.contentType] = response.contentType
            headers[.cacheControl] = "no-store"
            return Response(
                status: response.status,
                headers: headers,
                body: .init(byteBuffer: ByteBuffer(bytes: response.raw ?? APIJSON.render(response.body)))
            )
        } catch let error as ConveyorHTTPError {
            return try error.response(from: request, context: context)
        } catch let error as ConveyorError {
            if ConveyorHTTPError.status(for: error.code).code >= 500 {
                self.client.logger.error(
                    "admin API call failed",
                    metadata: ["route": "\(route.path)", "error": "\(String(reflecting: error))"]
                )
            }
            var answer = ConveyorHTTPError(error)
            if let exceeded = error.underlying as? EnqueueLimitExceeded, let wait = exceeded.retryAfter {
                // Whole seconds, rounded up, as Retry-After takes them.
                let seconds = Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18
                answer.headers[.retryAfter] = "\(Int(seconds.rounded(.up)))"
            }
            return try answer.response(from: request, context: context)
        } catch {
            self.client.logger.error(
                "admin API call failed",
                metadata: ["route": "\(route.path)", "error": "\(String(reflecting: error))"]
            )
            return try ConveyorHTTPError(
                .internalServerError,
                code: ConveyorHTTPError.Code.internalError,
                "the call failed; the server's log has the detail"
            )
            .response(from: request, context: context)
        }
    }

    /// The performer recorded for the request's token (`token:<name>`).
    ///
    /// - Throws: 401 `UNAUTHORIZED` without a token or with one that matches none.
    func authenticate(_ request: Request) throws -> String {
        var presented: Substring?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { presented = parts[1] }
        }
        if presented == nil, let key = request.headers[HTTPField.Name("x-api-key")!] {
            presented = Substring(key)
        }
        var matched: APIToken?
        if let presented {
            // Every token is compared, so the time does not tell which one (or whether any) matched.
            for token in self.configuration.tokens where token.matches(presented) {
                matched = token
            }
        }
        guard let matched else {
            throw ConveyorHTTPError(
                .unauthorized,
                code: ConveyorHTTPError.Code.unauthorized,
                presented == nil
                    ? "this route needs a token: Authorization: Bearer <token> or x-api-key: <token>"
                    : "the token is not valid",
                headers: [.wwwAuthenticate: #"Bearer realm="conveyor""#]
            )
        }
        return "token:\(matched.name)"
    }
}

/// What a handler gets: the API, path parameters, query, body and the performer.
struct Call: Sendable {
    let api: ConveyorAdminAPI
    let parameters: @Sendable (String) -> String?
    let query: APIQuery
    let body: [UInt8]
    let performer: String?

    var client: ConveyorClient { self.api.client }

    func parameter(_ name: String) throws -> String {
        guard let value = self.parameters(name), !value.isEmpty else {
            throw ConveyorHTTPError.parameter("the path has no \(name)")
        }
        return value.removingPercentEncoding ?? value
    }

    func jobID() throws -> JobID {
        let text = try self.parameter("id")
        guard let value = Int64(text), value > 0 else {
            throw ConveyorHTTPError.parameter("a job id is a positive integer, got \(text.prefix(40))")
        }
        return JobID(value)
    }

    func bodyObject() throws -> APIBody { try APIBody(self.body) }
}

/// A handler's answer: a status and a JSON value.
struct APIResponse: @unchecked Sendable {
    var status: HTTPResponse.Status
    var body: Any
    /// A body that is not JSON (the Prometheus text), with its content type.
    var raw: [UInt8]?
    var contentType = "application/json; charset=utf-8"

    init(status: HTTPResponse.Status, body: Any) {
        self.status = status
        self.body = body
    }

    static func ok(_ body: Any) -> APIResponse { APIResponse(status: .ok, body: body) }

    static func text(_ bytes: [UInt8], contentType: String) -> APIResponse {
        var response = APIResponse(status: .ok, body: [:] as [String: Any])
        response.raw = bytes
        response.contentType = contentType
        return response
    }
}

extension ConveyorAdminAPI {
    /// A route as documented: its method, path (relative to where the collection is mounted, with `{id}`-style
    /// parameters), operation id, summary, tag, and whether it needs no token.
    public struct RouteDescription: Sendable, Hashable {
        public var method: String
        public var path: String
        public var operationID: String
        public var summary: String
        public var tag: String
        public var isPublic: Bool
    }

    /// Every route the collection registers, in order.
    public static var routeDescriptions: [RouteDescription] {
        Self.routeTable.map {
            RouteDescription(
                method: $0.method.rawValue,
                path: $0.path,
                operationID: $0.operationID,
                summary: $0.summary,
                tag: $0.tag,
                isPublic: $0.isPublic
            )
        }
    }
}

/// One route of the API: what `/openapi.json` documents and what ``ConveyorAdminAPI/routes(context:)`` registers.
struct Route: Sendable {
    var method: HTTPRequest.Method
    var path: String
    var operationID: String
    var summary: String
    var tag: String
    var isPublic: Bool = false
    var handler: @Sendable (Call) async throws -> APIResponse
}
