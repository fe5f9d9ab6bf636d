/// The "did you mean" of an error: the known word a mistyped one most likely meant.
enum Suggestion {
    /// The word of `candidates` closest to `word`, if it is close: `_` typed for `-`, a different case, or at most
    /// two edits (insertions, deletions, substitutions) away for words of five letters or more, one for shorter.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let normalized = String(word.lowercased().map { $0 == "_" ? "-" : $0 })
        if let same = candidates.first(where: { $0 == normalized }) { return same }
        let allowance = word.count >= 5 ? 2 : 1
        var best: (word: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(Array(normalized), Array(candidate), limit: allowance)
            if distance <= allowance, distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
        }
        return best?.word
    }

    /// The Levenshtein distance of `a` and `b`, or `limit + 1` once it is certain to exceed `limit`.
    private static func editDistance(_ a: [Character], _ b: [Character], limit: Int) -> Int {
        guard abs(a.count - b.count) <= limit else { return limit + 1 }
        guard a.count < 256, b.count < 256 else { return limit + 1 }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            if current.min() ?? 0 > limit { return limit + 1 }
            previous = current
        }
        return previous[b.count]
    }
}
