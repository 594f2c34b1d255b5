import Foundation

/// What one pass of the scheduler does with one schedule: which ticks to start, in order, whether
/// to cancel the previous instance, and the schedule's state afterwards. Decided from the stored
/// state alone, so that two workers reading the same revision decide the same.
struct SchedulePlan {
    /// The schedule as it is to be written back (same revision: the store compares it).
    var record: ScheduleRecord
    /// The ticks to start, in order: requested ones (trigger, backfill), a buffered one, due ones.
    var starts: [Date] = []
    /// The previous instance is to be cancelled (``Schedule/OverlapPolicy/cancelOther``).
    var cancelPrevious = false
    /// Due ticks older than the catch-up window, skipped: how many (counted up to 10,000), and the first.
    var skippedLate = 0
    var firstSkippedLate: Date?
    /// Due ticks dropped because the previous instance still ran.
    var skippedOverlapping: [Date] = []

    /// - Parameters:
    ///   - record: The schedule as read.
    ///   - spec: Its spec.
    ///   - now: The time of the pass.
    ///   - grace: How late a tick may start beyond the catch-up window (the pass's period, so that a
    ///     window of zero still starts the tick a pass finds just due).
    ///   - previousRunning: Whether ``ScheduleRecord/lastInstanceID`` is still unfinished.
    ///   - limit: At most this many ticks of each kind; the rest wait for the next pass.
    init(_ record: ScheduleRecord, spec: ScheduleSpec, now: Date, grace: Duration, previousRunning: Bool, limit: Int) {
        self.record = record
        var running = previousRunning
        let requested = Array(record.requestedTicks.prefix(limit))
        self.record.requestedTicks.removeFirst(requested.count)
        starts += requested
        running = running || !requested.isEmpty
        guard !record.paused else {
            finish()
            return
        }
        if !running, let buffered = self.record.bufferedTicks.first {
            self.record.bufferedTicks.removeFirst()
            starts.append(buffered)
            running = true
        }
        var due = dueTicks(spec: spec, now: now, earliest: now.addingTimeInterval(-max(record.catchUpWindow, grace).seconds), limit: limit)
        if record.overlap == .cancelOther, due.count > 1 {
            // Each would cancel the one before it at once: only the latest starts.
            skippedOverlapping += due.dropLast()
            due = [due[due.count - 1]]
        }
        for tick in due {
            switch record.overlap {
            case .allowAll:
                starts.append(tick)
            case .cancelOther:
                cancelPrevious = running
                starts.append(tick)
            case .skip where running:
                skippedOverlapping.append(tick)
            case .bufferOne where running:
                if self.record.bufferedTicks.isEmpty { self.record.bufferedTicks.append(tick) } else { skippedOverlapping.append(tick) }
            case .bufferAll where running:
                self.record.bufferedTicks.append(tick)
            case .skip, .bufferOne, .bufferAll:
                starts.append(tick)
            }
            running = true
        }
        finish()
    }

    /// The due ticks from ``ScheduleRecord/nextTick`` through `now`, moving `nextTick` past them;
    /// those before `earliest` are skipped in one jump.
    private mutating func dueTicks(spec: ScheduleSpec, now: Date, earliest: Date, limit: Int) -> [Date] {
        var due: [Date] = []
        while let tick = record.nextTick, tick <= now, due.count < limit {
            if tick < earliest {
                skippedLate += spec.ticks(from: tick, through: earliest.addingTimeInterval(-0.001), limit: 10_000).count
                firstSkippedLate = firstSkippedLate ?? tick
                record.nextTick = spec.nextTick(after: earliest.addingTimeInterval(-0.001))
                continue
            }
            due.append(tick)
            record.nextTick = spec.nextTick(after: tick)
        }
        return due
    }

    /// Notes the last start as the instance the overlap policy watches next.
    private mutating func finish() {
        guard let last = starts.last else { return }
        record.lastInstanceID = Schedule.instanceID(schedule: record.name, tick: last)
        let latest = starts.max()!
        record.lastTick = max(record.lastTick ?? latest, latest)
    }
}
