// FastToJson (the store's reflection JSON writer for run configs) against protobuf's printer.

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>
#include <string>

#include "scalelab/v1/common.pb.h"
#include "services/store/internal/store_rows.h"

namespace scalelab {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Sets every field of `message` to a non-default value (two elements per repeated field, one
// entry per map), `seed` varying the values, recursing `depth` levels into messages.
void Fill(Message* message, int seed, int depth) {
  const google::protobuf::Descriptor* d = message->GetDescriptor();
  const google::protobuf::Reflection* r = message->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->containing_oneof() != nullptr && f->containing_oneof()->field(0) != f) continue;
    const int n = f->is_repeated() ? 2 : 1;
    for (int k = 0; k < n; ++k) {
      const int v = seed + i + k + 1;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_MESSAGE:
          if (depth <= 0) break;
          Fill(f->is_repeated() ? r->AddMessage(message, f) : r->MutableMessage(message, f), v,
               depth - 1);
          break;
        case FieldDescriptor::CPPTYPE_INT32:
          f->is_repeated() ? r->AddInt32(message, f, -v) : r->SetInt32(message, f, -v);
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          f->is_repeated() ? r->AddUInt32(message, f, v) : r->SetUInt32(message, f, v);
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          f->is_repeated() ? r->AddInt64(message, f, -(int64_t{1} << 60) - v)
                           : r->SetInt64(message, f, -(int64_t{1} << 60) - v);
          break;
        case FieldDescriptor::CPPTYPE_UINT64:
          f->is_repeated() ? r->AddUInt64(message, f, (uint64_t{1} << 63) + v)
                           : r->SetUInt64(message, f, (uint64_t{1} << 63) + v);
          break;
        case FieldDescriptor::CPPTYPE_DOUBLE:
          f->is_repeated() ? r->AddDouble(message, f, 3e-5 * v) : r->SetDouble(message, f, 0.1 * v);
          break;
        case FieldDescriptor::CPPTYPE_FLOAT:
          f->is_repeated() ? r->AddFloat(message, f, 0.1f * v) : r->SetFloat(message, f, 1e7f * v);
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          f->is_repeated() ? r->AddBool(message, f, true) : r->SetBool(message, f, true);
          break;
        case FieldDescriptor::CPPTYPE_ENUM: {
          const int count = f->enum_type()->value_count();
          const int number = f->enum_type()->value(count > 1 ? 1 + v % (count - 1) : 0)->number();
          f->is_repeated() ? r->AddEnumValue(message, f, number)
                           : r->SetEnumValue(message, f, number);
          break;
        }
        case FieldDescriptor::CPPTYPE_STRING: {
          const std::string text = std::string("a\"b\\c\n\x01 é ") + std::to_string(v);
          f->is_repeated() ? r->AddString(message, f, text) : r->SetString(message, f, text);
          break;
        }
      }
    }
  }
}

TEST_CASE("FastToJson reads back as the message protobuf's printer writes", "[store][json]") {
  for (int seed : {0, 7}) {
    v1::RunConfig config;
    Fill(&config, seed, 4);
    const std::string fast = services::internal::FastToJson(config);
    v1::RunConfig parsed;
    google::protobuf::util::JsonParseOptions options;
    REQUIRE(google::protobuf::util::JsonStringToMessage(fast, &parsed, options).ok());
    INFO(fast);
    CHECK(google::protobuf::util::MessageDifferencer::Equals(parsed, config));
    // Not compared as text: protobuf prints a map's entries in an unspecified order.
  }
  CHECK(services::internal::FastToJson(v1::RunConfig()) == "{}");
  CHECK(services::internal::ToJson(v1::RunConfig()) == "{}");
}

TEST_CASE("OverridesToJson escapes keys and values", "[store][json]") {
  CHECK(services::internal::OverridesToJson({}) == "{}");
  CHECK(services::internal::OverridesToJson({{"train.lr", "0.1"}, {"a\"b", "c\\\n"}}) ==
        "{\"a\\\"b\":\"c\\\\\\u000a\",\"train.lr\":\"0.1\"}");
}

}  // namespace
}  // namespace scalelab
