// The data directory's figures for /metrics: what the store holds and what the disk has left.
#pragma once

#include <string>
#include <vector>

#include "base/metrics.h"
#include "storage/store.h"

namespace parley::storage {

// parley_storage_disk_bytes (Store::ApproximateSize summed over every family), parley_storage_disk_free_bytes
// and parley_storage_disk_free_ratio (statvfs of `data_dir`: space available to unprivileged users; both
// left out when statvfs fails). Any thread; `store` must outlive the call. A metrics::Registry collector.
void CollectStoreMetrics(Store& store, const std::string& data_dir, std::vector<metrics::Family>& out);

}  // namespace parley::storage
