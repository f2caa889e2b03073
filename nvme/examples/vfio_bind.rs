//! The operator's bind command until `veltrix` grows one: hands an NVMe
//! controller to vfio-pci (for the userspace driver) or back to the kernel.
//! It calls the same functions (`nvme::vfio::bind`) the appliance's init
//! will call at boot.
//!
//! ```text
//! vfio_bind list                 # NVMe controllers, their driver and IOMMU group
//! vfio_bind vfio 0000:00:03.0    # bind to vfio-pci; prints /dev/vfio/N
//! vfio_bind kernel 0000:00:03.0  # back to the nvme driver
//! ```

use nvme::vfio::bind;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["list"] => bind::nvme_controllers().map(|controllers| {
            for bdf in controllers {
                let driver = bind::current_driver(&bdf).ok().flatten();
                let group = bind::iommu_group(&bdf).ok();
                println!(
                    "{bdf} driver={} iommu_group={}",
                    driver.as_deref().unwrap_or("-"),
                    group.map_or("-".to_string(), |g| g.to_string())
                );
            }
        }),
        ["vfio", bdf] => {
            bind::bind_vfio(bdf).map(|group| println!("{bdf} -> vfio-pci, /dev/vfio/{group}"))
        }
        ["kernel", bdf] => bind::bind_kernel(bdf, "nvme").map(|()| println!("{bdf} -> nvme")),
        _ => {
            eprintln!("usage: vfio_bind list | vfio BDF | kernel BDF");
            std::process::exit(2);
        }
    };
    if let Err(error) = result {
        eprintln!("vfio_bind: {error}");
        std::process::exit(1);
    }
}
