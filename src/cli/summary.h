// The end-of-run summary of tm record: every packet accounted for, per class.
#pragma once

#include <ostream>
#include <vector>

#include "capture/source.h"
#include "record/recorder.h"
#include "store/store_writer.h"

namespace tmach::cli {

void print_record_summary(std::ostream& os, const record::Recorder& rec, const store::StoreWriter& writer,
                          const std::vector<capture::SourceStats>& kernel, double seconds, bool json);

}  // namespace tmach::cli
