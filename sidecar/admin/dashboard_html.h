// The dashboard page, sidecar/admin/dashboard.html, as bytes built into
// forkd: the build generates dashboard_html.cc from it (embed_file.cmake).
#pragma once

#include <cstddef>

namespace forkd::admin {

extern const char kDashboardHtml[];
extern const size_t kDashboardHtmlSize;

}  // namespace forkd::admin
