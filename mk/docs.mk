# Documentation (issue 15): the DocC archives of the libraries, with swift-docc-plugin.
#
#   make docs   FamilyServer's and FamilyServerLifecycle's archives in $(DOCS_DIR); any DocC
#               warning (an unresolved symbol link, an undocumented parameter) fails the build.
#               About 45 s from a clean tree on 2 cores (measured with other builds running),
#               10-15 s after `make test`'s build.

DOCS_DIR     ?= .build/docs
DOCS_TARGETS  = FamilyServer FamilyServerLifecycle
# Options for `swift package` itself, e.g. DOCS_FLAGS=--scratch-path=.build-docs.
DOCS_FLAGS   ?=

.PHONY: docs

docs: deps
	@mkdir -p $(DOCS_DIR)
	@for target in $(DOCS_TARGETS); do \
	    echo "docs: $$target -> $(DOCS_DIR)/$$target.doccarchive"; \
	    $(SWIFT) package $(DOCS_FLAGS) --allow-writing-to-directory $(DOCS_DIR) \
	        generate-documentation --target $$target --warnings-as-errors \
	        --output-path $(DOCS_DIR)/$$target.doccarchive || exit 1; \
	done
