import ArgumentParser
import Edda
import Foundation

/// A duration as the CLI's options take it: a whole number and a unit, as in `500ms`, `30s`, `5m`,
/// `2h`, `30d` or `2w`.
enum DurationText {
    /// The units, smallest first, with their length in milliseconds.
    static let units: [(suffix: String, milliseconds: Int64)] = [
        ("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000),
    ]

    /// Reads `text` with one of `allowed`'s units (all of them by default); a number of zero is
    /// refused unless `zeroAllowed`.
    ///
    /// - Throws: A `ValidationError` naming `option`, the units it takes and `example`.
    static func parse(
        _ text: String, option: String, allowed: [String] = units.map(\.suffix), zeroAllowed: Bool = true, example: String
    ) throws -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        // The longest suffix that matches: `ms` before `s`.
        let unit = units.filter { allowed.contains($0.suffix) && trimmed.hasSuffix($0.suffix) }.max { $0.suffix.count < $1.suffix.count }
        guard let unit, let amount = Int64(trimmed.dropLast(unit.suffix.count)), amount >= (zeroAllowed ? 0 : 1),
            amount <= Int64.max / 1_000_000 / unit.milliseconds
        else {
            let names = allowed.dropLast().joined(separator: ", ") + (allowed.count > 1 ? " or " : "") + (allowed.last ?? "")
            throw ArgumentParser.ValidationError(
                "\(option) takes a whole number\(zeroAllowed ? "" : " above zero") and a unit (\(names)), such as \(example); '\(text)' is not one."
            )
        }
        return .milliseconds(amount * unit.milliseconds)
    }

    /// `duration` as a user would write it: in its largest whole unit (`90s` stays `90s`, `120s` is `2m`).
    static func text(_ duration: Duration) -> String {
        let milliseconds = duration.milliseconds
        guard let unit = units.reversed().first(where: { milliseconds > 0 && milliseconds % $0.milliseconds == 0 }) else { return "0s" }
        return "\(milliseconds / unit.milliseconds)\(unit.suffix)"
    }
}
