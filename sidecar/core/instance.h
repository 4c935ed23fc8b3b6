// The instance id: which forkd this is, among the several (one per app
// replica) that feed the same stores. Aggregating table destinations keep
// each instance's partial rows apart by it, so it must stay the same for as
// long as the data_dir lives: it is created once, in <data_dir>/instance,
// and read back at every start.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace forkd {

// 1 to 64 characters of A-Z a-z 0-9 . _ - (a pod or host name fits).
bool ValidInstanceId(std::string_view id);

// The id of the forkd that owns `data_dir` (which must exist). The first
// start writes it: `configured` when set, otherwise "<hostname>-<8 hex>".
// Later starts read it back. A `configured` id that differs from the one
// stored is not taken (aggregates counted under the old id would count
// twice): *warning says so, and the stored id is returned.
[[nodiscard]] Status ResolveInstance(const std::string& data_dir, const std::string& configured,
                                     std::string* id, std::string* warning);

}  // namespace forkd
