/* vpq_types.c — names and predicates of the engine's value types (vpq_types.h). */
#include "vpq_types.h"

const char *vpq_type_name(vpq_type type) {
  switch (type) { /* ORDER VPQ_TYPE */
  case VPQ_TYPE_NULL: return "NULL";
  case VPQ_TYPE_BOOLEAN: return "BOOLEAN";
  case VPQ_TYPE_BIGINT: return "BIGINT";
  case VPQ_TYPE_DOUBLE: return "DOUBLE";
  case VPQ_TYPE_STRING: return "STRING";
  case VPQ_TYPE_TIMESTAMP: return "TIMESTAMP";
  case VPQ_TYPE_INTERVAL: return "INTERVAL";
  }
  return "?";
}
