// Compiles the uapi headers as C++ in one translation unit with <linux/kvm.h>.
#include <linux/kvm.h>
#include "kvm_uapi.h"
#include "kvmlike_ext.h"

static_assert(sizeof(kvmlike_obj_info) == 48, "kvmlike_obj_info size");
static_assert(sizeof(kvmlike_pool_info) == 64, "kvmlike_pool_info size");
