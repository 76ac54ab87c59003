#include "storage/store_metrics.h"

#include <sys/statvfs.h>

namespace parley::storage {

void CollectStoreMetrics(Store& store, const std::string& data_dir, std::vector<metrics::Family>& out) {
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < store.family_count(); ++i) bytes += store.ApproximateSize(FamilyId(i));
  out.push_back(metrics::Family{"parley_storage_disk_bytes",
                                "Approximate bytes the store uses: files on disk plus memtables, every family.",
                                metrics::Type::kGauge, {metrics::Sample{{}, static_cast<double>(bytes)}}, {}});
  struct statvfs fs {};
  if (data_dir.empty() || statvfs(data_dir.c_str(), &fs) != 0 || fs.f_blocks == 0) return;
  const double free_bytes = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
  const double ratio = static_cast<double>(fs.f_bavail) / static_cast<double>(fs.f_blocks);
  out.push_back(metrics::Family{"parley_storage_disk_free_bytes",
                                "Bytes free for the broker on the data directory's filesystem.", metrics::Type::kGauge,
                                {metrics::Sample{{}, free_bytes}}, {}});
  out.push_back(metrics::Family{"parley_storage_disk_free_ratio",
                                "Free share of the data directory's filesystem (0..1).", metrics::Type::kGauge,
                                {metrics::Sample{{}, ratio}}, {}});
}

}  // namespace parley::storage
