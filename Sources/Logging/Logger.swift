import Foundation
import Synchronization

/// A small logger in the shape of swift-log: a label, a level, and metadata kept apart from the message.
public struct Logger: Sendable {
    /// How much a log line matters, from the most detailed to the most urgent.
    public enum Level: Int, Sendable, Comparable, CustomStringConvertible {
        case debug, info, warning, error

        /// Orders levels from debug to error.
        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

        /// The level as it appears in a log line.
        public var description: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warning: "warning"
            case .error: "error"
            }
        }
    }

    /// Key-value pairs attached to a line; values are printed quoted when they need it.
    public typealias Metadata = [String: String]

    /// The name of the component that writes through this logger.
    public let label: String
    /// Metadata added to every line written through this logger.
    public var metadata: Metadata

    /// Makes a logger for one component.
    public init(label: String, metadata: Metadata = [:]) {
        self.label = label
        self.metadata = metadata
    }

    /// The lowest level written, for every logger of the process.
    public static var threshold: Level {
        get { LogSink.shared.threshold }
        set { LogSink.shared.threshold = newValue }
    }

    /// Returns a copy of this logger that adds `extra` to every line.
    public func with(_ extra: Metadata) -> Logger {
        var copy = self
        copy.metadata.merge(extra) { _, new in new }
        return copy
    }

    /// Writes a line at `level` when the threshold lets it through.
    public func log(_ level: Level, _ message: @autoclosure () -> String, _ extra: Metadata = [:]) {
        guard level >= LogSink.shared.threshold else { return }
        var merged = metadata
        merged.merge(extra) { _, new in new }
        LogSink.shared.write(level: level, label: label, message: message(), metadata: merged)
    }

    /// Writes routine detail.
    public func debug(_ message: @autoclosure () -> String, _ extra: Metadata = [:]) {
        log(.debug, message(), extra)
    }

    /// Writes a finished unit of work.
    public func info(_ message: @autoclosure () -> String, _ extra: Metadata = [:]) {
        log(.info, message(), extra)
    }

    /// Writes something a user should look at.
    public func warning(_ message: @autoclosure () -> String, _ extra: Metadata = [:]) {
        log(.warning, message(), extra)
    }

    /// Writes a failure: a 5xx answer, or data that failed verification.
    public func error(_ message: @autoclosure () -> String, _ extra: Metadata = [:]) {
        log(.error, message(), extra)
    }
}

/// The process-wide destination of log lines: standard error, one line per call.
final class LogSink: Sendable {
    static let shared = LogSink()

    private let level = Atomic<Int>(Logger.Level.info.rawValue)
    private let output = Mutex<Void>(())

    var threshold: Logger.Level {
        get { Logger.Level(rawValue: level.load(ordering: .relaxed)) ?? .info }
        set { level.store(newValue.rawValue, ordering: .relaxed) }
    }

    func write(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) {
        var line = "\(Self.timestamp()) \(level) \(label): \(message)"
        for key in metadata.keys.sorted() {
            line += " \(key)=\(Self.quoted(metadata[key]!))"
        }
        line += "\n"
        output.withLock { _ in
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, Int(now.tv_nsec / 1_000_000))
    }

    private static func quoted(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\n" }
        guard needsQuotes else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }
}
