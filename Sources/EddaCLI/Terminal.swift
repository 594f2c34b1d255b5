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
    /// The columns the text takes in a terminal (see ``Character/displayWidth``), not its
    /// number of characters: `注文` takes 4, `🚀` 2, `é` 1.
    var displayWidth: Int { reduce(0) { $0 + $1.displayWidth } }

    /// The text and spaces up to `width` columns, or the text and one space when it is as wide or wider.
    func padding(_ width: Int) -> String {
        let columns = displayWidth
        return columns >= width ? self + " " : self + String(repeating: " ", count: width - columns)
    }

    /// At most `length` columns on one line, ending in `…` when cut.
    func clipped(_ length: Int) -> String {
        let line = replacingOccurrences(of: "\n", with: " ")
        guard line.displayWidth > length else { return line }
        var kept = ""
        var columns = 0
        for character in line {
            columns += character.displayWidth
            if columns > length - 1 { break }
            kept.append(character)
        }
        return kept + "…"
    }
}

extension Character {
    /// The columns this character takes in a terminal: 2 for emoji and East Asian wide or fullwidth
    /// characters (CJK, kana, Hangul, fullwidth forms), 0 for combining marks and invisible format
    /// characters, 1 for the others.
    var displayWidth: Int {
        guard let first = unicodeScalars.first else { return 0 }
        if unicodeScalars.contains(where: \.properties.isEmojiPresentation) || (first.properties.isEmoji && unicodeScalars.contains("\u{FE0F}")) {
            return 2
        }
        if Self.wideRanges.contains(where: { $0.contains(first.value) }) { return 2 }
        switch first.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: return 1
        }
    }

    /// Unicode's East Asian Wide and Fullwidth blocks (EastAsianWidth.txt, W and F).
    private static let wideRanges: [ClosedRange<UInt32>] = [
        0x1100...0x115F, 0x2329...0x232A, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
        0xA000...0xA4CF, 0xA960...0xA97F, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE10...0xFE19, 0xFE30...0xFE6F,
        0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x2FFFD, 0x30000...0x3FFFD,
    ]
}
