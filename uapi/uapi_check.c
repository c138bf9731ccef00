/* Compiles the uapi headers as C in one translation unit with <linux/kvm.h>. */
#include <linux/kvm.h>
#include "kvm_uapi.h"
#include "kvmlike_ext.h"

_Static_assert(sizeof(struct kvmlike_obj_info) == 48, "kvmlike_obj_info size");
_Static_assert(sizeof(struct kvmlike_debug_objects) == 16, "kvmlike_debug_objects size");
