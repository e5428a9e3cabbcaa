import Glibc
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
///
/// Each line goes out in one `write(2)`, which the kernel keeps whole for lines shorter than a pipe's buffer, so
/// no lock is needed and a logging thread never waits for another.
final class LogSink: Sendable {
    /// The one sink every logger of the process writes to.
    static let shared = LogSink()

    private let level = Atomic<Int>(Logger.Level.info.rawValue)

    /// The lowest level written; info until it is changed.
    var threshold: Logger.Level {
        get { Logger.Level(rawValue: level.load(ordering: .relaxed)) ?? .info }
        set { level.store(newValue.rawValue, ordering: .relaxed) }
    }

    /// Writes one line to standard error: UTC timestamp, level, label, message, then the metadata sorted by key.
    func write(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) {
        var line: [UInt8] = []
        line.reserveCapacity(256)
        Self.appendTimestamp(to: &line)
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: level.description.utf8)
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: label.utf8)
        line.append(contentsOf: ": ".utf8)
        line.append(contentsOf: message.utf8)
        for key in metadata.keys.sorted() {
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: key.utf8)
            line.append(UInt8(ascii: "="))
            Self.appendValue(metadata[key]!, to: &line)
        }
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { bytes in
            var written = 0
            while written < bytes.count {
                let count = Glibc.write(2, bytes.baseAddress! + written, bytes.count - written)
                if count <= 0 { break }
                written += count
            }
        }
    }

    private static func appendTimestamp(to line: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                line.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        line.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        line.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        line.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        line.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        line.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        line.append(UInt8(ascii: "."))
        digits(Int(now.tv_nsec) / 1_000_000, 3)
        line.append(UInt8(ascii: "Z"))
    }

    /// The bytes that make a metadata value need quotes.
    private static let specialBytes: Set<UInt8> = [
        UInt8(ascii: " "), UInt8(ascii: "\""), UInt8(ascii: "="), UInt8(ascii: "\n"),
    ]

    /// Appends a metadata value, quoted and escaped when it holds a space, a quote, `=` or a line break.
    private static func appendValue(_ value: String, to line: inout [UInt8]) {
        let needsQuotes = value.isEmpty || value.utf8.contains { specialBytes.contains($0) }
        guard needsQuotes else {
            line.append(contentsOf: value.utf8)
            return
        }
        line.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                line.append(UInt8(ascii: "\\"))
                line.append(byte)
            case UInt8(ascii: "\n"):
                line.append(contentsOf: "\\n".utf8)
            default:
                line.append(byte)
            }
        }
        line.append(UInt8(ascii: "\""))
    }
}
