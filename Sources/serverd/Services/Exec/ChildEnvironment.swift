import Glibc

/// The environment an exec child starts with: variables every child shares, converted to C strings once, followed by
/// its own (the UCSPI variables of its connection, or the socket activation variables of a wait-mode program).
struct ChildEnvironment {
    /// `NAME=value` C strings made once and never freed: serverd's own variables, the same for every child.
    struct SharedCStrings: @unchecked Sendable {
        // @unchecked: the strings are written once, when made, and only read afterwards.
        let pointers: [UnsafeMutablePointer<CChar>]

        init(_ strings: [String]) {
            pointers = strings.map { strdup($0)! }
        }

        private init() {
            pointers = []
        }

        /// No shared variables.
        static let none = SharedCStrings()
    }

    let shared: SharedCStrings
    /// This child's own variables, after the shared ones.
    let own: [String]
    /// Where in ``own`` the variables of this child alone begin (the rest are serverd's, with `env` changes).
    let ownStart: Int

    init(shared: SharedCStrings, own: [String], ownStart: Int = 0) {
        self.shared = shared
        self.own = own
        self.ownStart = ownStart
    }
}
