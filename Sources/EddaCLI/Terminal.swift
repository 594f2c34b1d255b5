import Edda
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Output: colour on a terminal, plain text when piped or when `NO_COLOR` is set.
enum Terminal {
    static let colours: Bool = {
        let environment = ProcessInfo.processInfo.environment
        return isatty(STDOUT_FILENO) == 1 && environment["NO_COLOR"] == nil && environment["TERM"] != "dumb"
    }()

    enum Colour: String {
        case red = "31", green = "32", yellow = "33", blue = "34", grey = "90", bold = "1"
    }

    static func paint(_ text: String, _ colour: Colour) -> String {
        colours ? "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m" : text
    }

    static func colour(of status: InstanceStatus) -> Colour {
        switch status {
        case .completed: .green
        case .failed: .red
        case .compensating: .yellow
        case .cancelled: .grey
        default: .blue
        }
    }

    /// A status, padded to `width` before it is coloured (escape codes take no room on screen).
    static func status(_ status: InstanceStatus, width: Int = 0) -> String {
        paint(width > 0 ? status.rawValue.padding(width) : status.rawValue, colour(of: status))
    }
}

/// A spinner on standard error while something takes time, only on a terminal.
enum Progress {
    static func during<Result: Sendable>(_ label: String, _ body: () async throws -> Result) async throws -> Result {
        guard isatty(STDERR_FILENO) == 1 else { return try await body() }
        let spinner = Task {
            let frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
            var index = 0
            // The first frame only after a moment: quick operations print nothing.
            try? await Task.sleep(for: .milliseconds(300))
            while !Task.isCancelled {
                FileHandle.standardError.write(Data("\r\(frames[index % frames.count]) \(label)…".utf8))
                index += 1
                try? await Task.sleep(for: .milliseconds(100))
            }
            if index > 0 { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        }
        defer { spinner.cancel() }
        let result = try await body()
        spinner.cancel()
        await spinner.value
        return result
    }
}

/// Writes a line with `FileHandle`, unbuffered.
func out(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

extension Date {
    var iso8601: String { formatted(.iso8601) }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }

    /// At most `length` characters on one line.
    func clipped(_ length: Int) -> String {
        let line = replacingOccurrences(of: "\n", with: " ")
        return line.count > length ? String(line.prefix(length - 1)) + "…" : line
    }
}
