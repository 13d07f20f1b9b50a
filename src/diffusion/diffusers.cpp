#include "core/error.h"
#include "diffusion/weights.h"
namespace duan::diffusion {
void open_diffusers(Checkpoint&, const std::string& dir) { fail(dir, ": diffusers folders are not supported yet"); }
std::string diffusers_unet_to_ldm(const std::string&) { return ""; }
std::string diffusers_vae_to_ldm(const std::string&) { return ""; }
}
