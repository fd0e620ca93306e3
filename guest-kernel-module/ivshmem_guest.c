// SPDX-License-Identifier: GPL-2.0
/*
 * ivshmem_guest: Linux guest driver for the ivshmem PCI device (1af4:1110),
 * QEMU's ivshmem-doorbell and ivshmem-plain and minivmm's --shm device, which
 * is QEMU's plus an extension in BAR0's reserved range (a peer-presence bitmap
 * and a "peers changed" interrupt), a status page in BAR4 and a doorbell port
 * in BAR5. The user-space interface is in abi/ivshmem_guest_ioctl.h.
 *
 * Exits: every BAR0 access is a VM exit that the VMM handles in user space, so
 * the hot paths avoid BAR0 where minivmm offers better: RING checks presence in
 * the status page (guest memory the VMM keeps current, read without an exit)
 * and rings through the doorbell port (an OUT that KVM hands to its ioeventfd
 * already decoded). INFO reads only values cached at probe.
 *
 * Resources: BAR0 (registers) is requested and mapped; BAR1 belongs to the
 * MSI-X core; BAR2 (the shared memory) is deliberately not requested, so that
 * /sys/bus/pci/devices/<BDF>/resource2 stays mappable next to this driver
 * (with CONFIG_IO_STRICT_DEVMEM a requested range refuses sysfs mmap). The
 * driver never reads or writes the shared memory itself: it is written by
 * other VMs and nothing in it is trusted here.
 *
 * Lifetime: struct ivshmem_guest is reference counted: the PCI binding holds
 * one reference and every open file one more, so remove() (rmmod, hot unplug)
 * may run while files are open. It marks the device gone under ig->lock;
 * everything that touches the registers holds that lock and checks ->gone.
 */
#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "abi/ivshmem_guest_ioctl.h"
#include "abi/ivshmem_regs.h"

#define DRV_NAME "ivshmem_guest"

static bool doorbell_port = true;
module_param(doorbell_port, bool, 0644);
MODULE_PARM_DESC(doorbell_port,
		 "ring through minivmm's doorbell port where the device offers "
		 "one (default); N rings BAR0 + 12 as on QEMU's device, to "
		 "compare what each costs");

/* How much of BAR0 each part of the register map needs (abi/ivshmem_regs.h) */
#define REGS_MIN_LEN (IVSHMEM_REG_DOORBELL + 4)
#define REGS_EXT_LEN (IVSHMEM_REG_MAX_PEERS + 4)
#define REGS_FEATURES_LEN (IVSHMEM_REG_FEATURES + 4)

struct ivshmem_guest;

struct ivshmem_guest_vec {
	struct ivshmem_guest *ig;
	unsigned int index;
	char name[32];
};

struct ivshmem_guest {
	struct kref ref;
	struct pci_dev *pdev;
	struct miscdevice misc;
	char name[16];
	int index; /* N of /dev/ivshmemN */

	/* Protects gone, regs accesses and files. */
	struct mutex lock;
	bool gone;
	struct list_head files;
	void __iomem *regs;
	bool ext;
	void __iomem *port; /* minivmm's doorbell port (BAR5), or NULL */
	const u64 *status;  /* the status page (memremap), or NULL */
	u32 own_id;	    /* IVPOSITION, MAX_PEERS: fixed once probed */
	u32 max_peers;
	u32 peers_changed_vector; /* as last written */
	u32 shm_memtype; /* IVSHMEM_GUEST_MEMTYPE_* of the latest mmap */
	bool memtype_reported;

	phys_addr_t shm_start;
	resource_size_t shm_size;

	unsigned int nvec;
	struct ivshmem_guest_vec vecs[IVSHMEM_GUEST_MAX_VECTORS];
	atomic64_t fired[IVSHMEM_GUEST_MAX_VECTORS]; /* interrupts per vector */
	wait_queue_head_t wait;

	/* Eventfds signalled from the interrupt handlers; efd_lock is taken in
	 * hard interrupt context. */
	spinlock_t efd_lock;
	struct eventfd_ctx *efd[IVSHMEM_GUEST_MAX_VECTORS];
	struct file *efd_owner[IVSHMEM_GUEST_MAX_VECTORS];
};

struct ivshmem_guest_file {
	struct ivshmem_guest *ig;
	struct file *file;
	struct list_head node;		     /* in ig->files */
	struct mutex read_lock;		     /* seen[] */
	u64 seen[IVSHMEM_GUEST_MAX_VECTORS]; /* fired[] as of the last read */
};

static DEFINE_IDA(ivshmem_guest_ida);

static void ivshmem_guest_free(struct kref *ref)
{
	struct ivshmem_guest *ig = container_of(ref, struct ivshmem_guest, ref);

	kfree(ig);
}

static irqreturn_t ivshmem_guest_irq(int irq, void *data)
{
	struct ivshmem_guest_vec *vec = data;
	struct ivshmem_guest *ig = vec->ig;

	atomic64_inc(&ig->fired[vec->index]);
	spin_lock(&ig->efd_lock);
	if (ig->efd[vec->index])
		eventfd_signal(ig->efd[vec->index], 1);
	spin_unlock(&ig->efd_lock);
	wake_up_interruptible(&ig->wait);
	return IRQ_HANDLED;
}

/* Drops the eventfds bound by file, or all of them when file is NULL. */
static void ivshmem_guest_unbind_eventfds(struct ivshmem_guest *ig,
					  struct file *file)
{
	struct eventfd_ctx *old[IVSHMEM_GUEST_MAX_VECTORS] = {};
	unsigned long flags;
	unsigned int v;

	spin_lock_irqsave(&ig->efd_lock, flags);
	for (v = 0; v < IVSHMEM_GUEST_MAX_VECTORS; v++) {
		if (ig->efd[v] && (!file || ig->efd_owner[v] == file)) {
			old[v] = ig->efd[v];
			ig->efd[v] = NULL;
			ig->efd_owner[v] = NULL;
		}
	}
	spin_unlock_irqrestore(&ig->efd_lock, flags);
	for (v = 0; v < IVSHMEM_GUEST_MAX_VECTORS; v++)
		if (old[v])
			eventfd_ctx_put(old[v]);
}

static u64 ivshmem_guest_pending(struct ivshmem_guest *ig,
				 struct ivshmem_guest_file *f)
{
	u64 mask = 0;
	unsigned int v;

	for (v = 0; v < ig->nvec; v++)
		if ((u64)atomic64_read(&ig->fired[v]) != f->seen[v])
			mask |= 1ull << v;
	return mask;
}

static int ivshmem_guest_open(struct inode *inode, struct file *file)
{
	/* misc_open() set private_data to our miscdevice, and holds misc_mtx,
	 * which misc_deregister() in remove() also takes: ig is alive here. */
	struct ivshmem_guest *ig =
		container_of(file->private_data, struct ivshmem_guest, misc);
	struct ivshmem_guest_file *f;
	unsigned int v;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	f->ig = ig;
	f->file = file;
	mutex_init(&f->read_lock);

	mutex_lock(&ig->lock);
	if (ig->gone) {
		mutex_unlock(&ig->lock);
		kfree(f);
		return -ENODEV;
	}
	for (v = 0; v < ig->nvec; v++)
		f->seen[v] = atomic64_read(&ig->fired[v]);
	list_add(&f->node, &ig->files);
	kref_get(&ig->ref);
	mutex_unlock(&ig->lock);

	file->private_data = f;
	return stream_open(inode, file);
}

static int ivshmem_guest_release(struct inode *inode, struct file *file)
{
	struct ivshmem_guest_file *f = file->private_data;
	struct ivshmem_guest *ig = f->ig;

	ivshmem_guest_unbind_eventfds(ig, file);
	mutex_lock(&ig->lock);
	list_del(&f->node);
	mutex_unlock(&ig->lock);
	kfree(f);
	kref_put(&ig->ref, ivshmem_guest_free);
	return 0;
}

static ssize_t ivshmem_guest_read(struct file *file, char __user *buf,
				  size_t count, loff_t *ppos)
{
	struct ivshmem_guest_file *f = file->private_data;
	struct ivshmem_guest *ig = f->ig;
	unsigned int v;
	u64 mask;
	int ret;

	if (count < sizeof(mask))
		return -EINVAL;
	if (!ig->nvec)
		return -EOPNOTSUPP;

	for (;;) {
		if (READ_ONCE(ig->gone))
			return -ENODEV;
		mutex_lock(&f->read_lock);
		mask = ivshmem_guest_pending(ig, f);
		for (v = 0; v < ig->nvec; v++)
			if (mask & (1ull << v))
				f->seen[v] = atomic64_read(&ig->fired[v]);
		mutex_unlock(&f->read_lock);
		if (mask)
			break;
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(
			ig->wait,
			READ_ONCE(ig->gone) || ivshmem_guest_pending(ig, f));
		if (ret)
			return ret;
	}
	if (copy_to_user(buf, &mask, sizeof(mask)))
		return -EFAULT;
	return sizeof(mask);
}

static __poll_t ivshmem_guest_poll(struct file *file, poll_table *wait)
{
	struct ivshmem_guest_file *f = file->private_data;
	struct ivshmem_guest *ig = f->ig;

	if (!ig->nvec)
		return EPOLLERR;
	poll_wait(file, &ig->wait, wait);
	if (READ_ONCE(ig->gone))
		return EPOLLHUP | EPOLLERR;
	return ivshmem_guest_pending(ig, f) ? EPOLLIN | EPOLLRDNORM : 0;
}

/* The presence bitmap; needs ig->ext. */
static u64 ivshmem_guest_peers(struct ivshmem_guest *ig)
{
	if (ig->status)
		return READ_ONCE(ig->status[IVSHMEM_STATUS_PEERS / 8]);
	return ioread32(ig->regs + IVSHMEM_REG_PEERS_LO) |
	       (u64)ioread32(ig->regs + IVSHMEM_REG_PEERS_HI) << 32;
}

static const char *const ivshmem_guest_memtype_names[] = {
	[IVSHMEM_GUEST_MEMTYPE_NONE] = "unknown",
	[IVSHMEM_GUEST_MEMTYPE_WB] = "write-back",
	[IVSHMEM_GUEST_MEMTYPE_WC] = "write-combining",
	[IVSHMEM_GUEST_MEMTYPE_UC_MINUS] = "uncached-minus",
	[IVSHMEM_GUEST_MEMTYPE_UC] = "uncached",
	[IVSHMEM_GUEST_MEMTYPE_WT] = "write-through",
	[IVSHMEM_GUEST_MEMTYPE_WP] = "write-protected",
};

/* The memory type the page table entry at addr got: the PAT may have changed
 * the write-back we asked for. Called with the mmap lock held. */
static u32 ivshmem_guest_memtype(struct vm_area_struct *vma, unsigned long addr)
{
	static const struct {
		enum page_cache_mode pcm;
		u32 type;
	} modes[] = {
		{_PAGE_CACHE_MODE_WB, IVSHMEM_GUEST_MEMTYPE_WB},
		{_PAGE_CACHE_MODE_WC, IVSHMEM_GUEST_MEMTYPE_WC},
		{_PAGE_CACHE_MODE_UC_MINUS, IVSHMEM_GUEST_MEMTYPE_UC_MINUS},
		{_PAGE_CACHE_MODE_UC, IVSHMEM_GUEST_MEMTYPE_UC},
		{_PAGE_CACHE_MODE_WT, IVSHMEM_GUEST_MEMTYPE_WT},
		{_PAGE_CACHE_MODE_WP, IVSHMEM_GUEST_MEMTYPE_WP},
	};
	unsigned long bits;
	spinlock_t *ptl;
	pte_t *ptep;
	unsigned int i;

	if (follow_pte(vma->vm_mm, addr, &ptep, &ptl))
		return IVSHMEM_GUEST_MEMTYPE_NONE;
	bits = pte_val(*ptep) & _PAGE_CACHE_MASK;
	pte_unmap_unlock(ptep, ptl);
	for (i = 0; i < ARRAY_SIZE(modes); i++)
		if (bits ==
		    (cachemode2protval(modes[i].pcm) & _PAGE_CACHE_MASK))
			return modes[i].type;
	return IVSHMEM_GUEST_MEMTYPE_NONE;
}

static int ivshmem_guest_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct ivshmem_guest_file *f = file->private_data;
	struct ivshmem_guest *ig = f->ig;
	int ret;

	/* A private (copy-on-write) view of memory other VMs write makes no
	 * sense, and would outlive an unplug as anonymous pages. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	/* vm_iomap_memory() checks that offset and length lie inside BAR2.
	 * The protection stays the default one: write-back (see the header). */
	mutex_lock(&ig->lock);
	if (ig->gone)
		ret = -ENODEV;
	else
		ret = vm_iomap_memory(vma, ig->shm_start, ig->shm_size);
	if (!ret) {
		ig->shm_memtype = ivshmem_guest_memtype(vma, vma->vm_start);
		if (ig->shm_memtype != IVSHMEM_GUEST_MEMTYPE_WB &&
		    !ig->memtype_reported) {
			ig->memtype_reported = true;
			dev_notice(
				&ig->pdev->dev,
				"shared memory mapped %s, not write-back: "
				"every load and store goes to memory (the "
				"MTRRs, or an uncached resource2 mapping, "
				"decide this)\n",
				ivshmem_guest_memtype_names[ig->shm_memtype]);
		}
	}
	mutex_unlock(&ig->lock);
	return ret;
}

static void ivshmem_guest_get_info(struct ivshmem_guest *ig,
				   struct ivshmem_guest_info *info)
{
	memset(info, 0, sizeof(*info));
	info->shm_size = ig->shm_size;
	info->own_id = ig->own_id;
	info->vectors = ig->nvec;
	info->peers_changed_vector = IVSHMEM_GUEST_VECTOR_OFF;
	info->shm_memtype = ig->shm_memtype;
	if (ig->nvec)
		info->flags |= IVSHMEM_GUEST_INFO_IRQ;
	if (ig->status)
		info->flags |= IVSHMEM_GUEST_INFO_STATUS_PAGE;
	if (ig->port && READ_ONCE(doorbell_port))
		info->flags |= IVSHMEM_GUEST_INFO_DOORBELL_PORT;
	if (ig->ext) {
		info->flags |= IVSHMEM_GUEST_INFO_EXT;
		info->peers = ivshmem_guest_peers(ig);
		info->max_peers = ig->max_peers;
		info->peers_changed_vector = ig->peers_changed_vector;
	} else {
		info->flags |= IVSHMEM_GUEST_INFO_PEERS_UNKNOWN;
	}
}

static int ivshmem_guest_ring(struct ivshmem_guest *ig,
			      const struct ivshmem_guest_ring *ring)
{
	u64 peers;

	if (ring->peer > IVSHMEM_GUEST_MAX_PEER_ID || ring->vector > 0xFFFF)
		return -EINVAL;
	if (!ig->nvec)
		return -EOPNOTSUPP;
	if (ig->ext && ring->peer < 64) {
		peers = ivshmem_guest_peers(ig);
		if (!(peers & (1ull << ring->peer)))
			return -ENXIO;
	}
	iowrite32(IVSHMEM_DOORBELL(ring->peer, ring->vector),
		  ig->port && READ_ONCE(doorbell_port)
			  ? ig->port
			  : ig->regs + IVSHMEM_REG_DOORBELL);
	return 0;
}

static int ivshmem_guest_bind_eventfd(struct ivshmem_guest *ig,
				      struct file *file,
				      const struct ivshmem_guest_eventfd *arg)
{
	struct eventfd_ctx *ctx = NULL, *old = NULL;
	unsigned long flags;
	int ret = 0;

	if (!ig->nvec)
		return -EOPNOTSUPP;
	if (arg->vector >= ig->nvec)
		return -EINVAL;
	if (arg->fd != -1) {
		ctx = eventfd_ctx_fdget(arg->fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	}

	spin_lock_irqsave(&ig->efd_lock, flags);
	if (ig->efd[arg->vector] && ig->efd_owner[arg->vector] != file) {
		ret = -EBUSY;
		old = ctx; /* not installed: dropped below */
	} else {
		old = ig->efd[arg->vector];
		ig->efd[arg->vector] = ctx;
		ig->efd_owner[arg->vector] = ctx ? file : NULL;
	}
	spin_unlock_irqrestore(&ig->efd_lock, flags);
	if (old)
		eventfd_ctx_put(old);
	return ret;
}

static long ivshmem_guest_ioctl(struct file *file, unsigned int cmd,
				unsigned long arg)
{
	struct ivshmem_guest_file *f = file->private_data;
	struct ivshmem_guest *ig = f->ig;
	void __user *uarg = (void __user *)arg;
	struct ivshmem_guest_info info;
	struct ivshmem_guest_ring ring;
	struct ivshmem_guest_eventfd efd;
	u32 vector;
	long ret;

	/* Copy the argument in before taking the lock: a fault may sleep. */
	switch (cmd) {
	case IVSHMEM_GUEST_INFO:
		break;
	case IVSHMEM_GUEST_RING:
		if (copy_from_user(&ring, uarg, sizeof(ring)))
			return -EFAULT;
		break;
	case IVSHMEM_GUEST_BIND_EVENTFD:
		if (copy_from_user(&efd, uarg, sizeof(efd)))
			return -EFAULT;
		break;
	case IVSHMEM_GUEST_ENABLE_PEER_EVENTS:
		if (copy_from_user(&vector, uarg, sizeof(vector)))
			return -EFAULT;
		break;
	default:
		return -ENOTTY;
	}

	mutex_lock(&ig->lock);
	if (ig->gone) {
		mutex_unlock(&ig->lock);
		return -ENODEV;
	}
	switch (cmd) {
	case IVSHMEM_GUEST_INFO:
		ivshmem_guest_get_info(ig, &info);
		ret = 0;
		break;
	case IVSHMEM_GUEST_RING:
		ret = ivshmem_guest_ring(ig, &ring);
		break;
	case IVSHMEM_GUEST_BIND_EVENTFD:
		ret = ivshmem_guest_bind_eventfd(ig, file, &efd);
		break;
	default: /* IVSHMEM_GUEST_ENABLE_PEER_EVENTS */
		if (!ig->ext || !ig->nvec)
			ret = -EOPNOTSUPP;
		else if (vector >= ig->nvec &&
			 vector != IVSHMEM_GUEST_VECTOR_OFF)
			ret = -EINVAL;
		else {
			iowrite32(vector,
				  ig->regs + IVSHMEM_REG_PEERS_CHANGED_VECTOR);
			ig->peers_changed_vector = vector;
			ret = 0;
		}
		break;
	}
	mutex_unlock(&ig->lock);

	if (ret == 0 && cmd == IVSHMEM_GUEST_INFO &&
	    copy_to_user(uarg, &info, sizeof(info)))
		ret = -EFAULT;
	return ret;
}

static const struct file_operations ivshmem_guest_fops = {
	.owner = THIS_MODULE,
	.open = ivshmem_guest_open,
	.release = ivshmem_guest_release,
	.read = ivshmem_guest_read,
	.poll = ivshmem_guest_poll,
	.mmap = ivshmem_guest_mmap,
	.unlocked_ioctl = ivshmem_guest_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = no_llseek,
};

static void ivshmem_guest_free_irqs(struct ivshmem_guest *ig)
{
	unsigned int v;

	for (v = 0; v < ig->nvec; v++)
		free_irq(pci_irq_vector(ig->pdev, v), &ig->vecs[v]);
	if (ig->nvec)
		pci_free_irq_vectors(ig->pdev);
}

/* All MSI-X vectors the device has (up to 64), one handler each. A device
 * without MSI-X (ivshmem-plain) works without interrupts: nvec stays 0. */
static int ivshmem_guest_setup_irqs(struct ivshmem_guest *ig)
{
	struct pci_dev *pdev = ig->pdev;
	unsigned int v, n;
	int ret;

	ret = pci_msix_vec_count(pdev);
	if (ret <= 0)
		return 0;
	n = min_t(unsigned int, ret, IVSHMEM_GUEST_MAX_VECTORS);
	ret = pci_alloc_irq_vectors(pdev, 1, n, PCI_IRQ_MSIX);
	if (ret < 0) {
		dev_warn(&pdev->dev, "no MSI-X vectors (%d): no interrupts\n",
			 ret);
		return 0;
	}
	n = ret;
	for (v = 0; v < n; v++) {
		ig->vecs[v].ig = ig;
		ig->vecs[v].index = v;
		snprintf(ig->vecs[v].name, sizeof(ig->vecs[v].name), "%s-%u",
			 ig->name, v);
		ret = request_irq(pci_irq_vector(pdev, v), ivshmem_guest_irq, 0,
				  ig->vecs[v].name, &ig->vecs[v]);
		if (ret) {
			dev_err(&pdev->dev, "request_irq for vector %u: %d\n",
				v, ret);
			ig->nvec = v;
			ivshmem_guest_free_irqs(ig);
			ig->nvec = 0;
			return ret;
		}
	}
	ig->nvec = n;
	return 0;
}

/* minivmm's status page and doorbell port, where FEATURES offers them; without
 * them the driver uses BAR0 as on QEMU's device. */
static void ivshmem_guest_map_extras(struct ivshmem_guest *ig)
{
	struct pci_dev *pdev = ig->pdev;
	u32 features = 0;

	if (pci_resource_len(pdev, 0) >= REGS_FEATURES_LEN)
		features = ioread32(ig->regs + IVSHMEM_REG_FEATURES);
	if ((features & IVSHMEM_FEATURE_STATUS_PAGE) &&
	    (pci_resource_flags(pdev, IVSHMEM_BAR_STATUS) & IORESOURCE_MEM) &&
	    pci_resource_len(pdev, IVSHMEM_BAR_STATUS) >= PAGE_SIZE &&
	    !pci_request_region(pdev, IVSHMEM_BAR_STATUS, DRV_NAME)) {
		/* Host RAM that the VMM writes with ordinary stores: cached. */
		ig->status =
			memremap(pci_resource_start(pdev, IVSHMEM_BAR_STATUS),
				 PAGE_SIZE, MEMREMAP_WB);
		if (!ig->status)
			pci_release_region(pdev, IVSHMEM_BAR_STATUS);
	}
	if ((features & IVSHMEM_FEATURE_DOORBELL_PORT) &&
	    (pci_resource_flags(pdev, IVSHMEM_BAR_PORT) & IORESOURCE_IO) &&
	    pci_resource_len(pdev, IVSHMEM_BAR_PORT) >= IVSHMEM_PORT_SIZE &&
	    !pci_request_region(pdev, IVSHMEM_BAR_PORT, DRV_NAME)) {
		ig->port = pci_iomap(pdev, IVSHMEM_BAR_PORT, IVSHMEM_PORT_SIZE);
		if (!ig->port)
			pci_release_region(pdev, IVSHMEM_BAR_PORT);
	}
}

static void ivshmem_guest_unmap_extras(struct ivshmem_guest *ig)
{
	if (ig->status) {
		memunmap((void *)ig->status);
		pci_release_region(ig->pdev, IVSHMEM_BAR_STATUS);
		ig->status = NULL;
	}
	if (ig->port) {
		pci_iounmap(ig->pdev, ig->port);
		pci_release_region(ig->pdev, IVSHMEM_BAR_PORT);
		ig->port = NULL;
	}
}

static int ivshmem_guest_probe(struct pci_dev *pdev,
			       const struct pci_device_id *id)
{
	struct ivshmem_guest *ig;
	int ret;

	ig = kzalloc(sizeof(*ig), GFP_KERNEL);
	if (!ig)
		return -ENOMEM;
	kref_init(&ig->ref);
	ig->pdev = pdev;
	mutex_init(&ig->lock);
	INIT_LIST_HEAD(&ig->files);
	init_waitqueue_head(&ig->wait);
	spin_lock_init(&ig->efd_lock);

	ret = ida_alloc(&ivshmem_guest_ida, GFP_KERNEL);
	if (ret < 0)
		goto err_free;
	ig->index = ret;
	snprintf(ig->name, sizeof(ig->name), "ivshmem%d", ig->index);

	ret = pci_enable_device(pdev);
	if (ret) {
		dev_err(&pdev->dev, "pci_enable_device: %d\n", ret);
		goto err_ida;
	}

	if (!(pci_resource_flags(pdev, 0) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, 0) < REGS_MIN_LEN) {
		dev_err(&pdev->dev, "BAR0 is not a register block\n");
		ret = -ENODEV;
		goto err_disable;
	}
	ig->shm_start = pci_resource_start(pdev, 2);
	ig->shm_size = pci_resource_len(pdev, 2);
	if (!(pci_resource_flags(pdev, 2) & IORESOURCE_MEM) || !ig->shm_size ||
	    !PAGE_ALIGNED(ig->shm_start) || !PAGE_ALIGNED(ig->shm_size)) {
		dev_err(&pdev->dev,
			"BAR2 is not page-aligned memory (%pR): cannot map "
			"it\n",
			&pdev->resource[2]);
		ret = -ENODEV;
		goto err_disable;
	}

	ret = pci_request_region(pdev, 0, DRV_NAME);
	if (ret) {
		dev_err(&pdev->dev, "BAR0 is in use: %d\n", ret);
		goto err_disable;
	}
	ig->regs = pci_iomap(pdev, 0, 0);
	if (!ig->regs) {
		dev_err(&pdev->dev, "cannot map BAR0\n");
		ret = -ENOMEM;
		goto err_release;
	}
	ig->ext = pci_resource_len(pdev, 0) >= REGS_EXT_LEN &&
		  ioread32(ig->regs + IVSHMEM_REG_EXT_ID) ==
			  IVSHMEM_EXT_SIGNATURE;
	ig->own_id = ioread32(ig->regs + IVSHMEM_REG_IVPOSITION);
	ig->peers_changed_vector = IVSHMEM_GUEST_VECTOR_OFF;
	if (ig->ext) {
		ig->max_peers = ioread32(ig->regs + IVSHMEM_REG_MAX_PEERS);
		ig->peers_changed_vector =
			ioread32(ig->regs + IVSHMEM_REG_PEERS_CHANGED_VECTOR);
		ivshmem_guest_map_extras(ig);
	}

	/* MSI-X messages are memory writes by the device. */
	pci_set_master(pdev);
	ret = ivshmem_guest_setup_irqs(ig);
	if (ret)
		goto err_unmap;

	ig->misc.minor = MISC_DYNAMIC_MINOR;
	ig->misc.name = ig->name;
	ig->misc.fops = &ivshmem_guest_fops;
	ig->misc.parent = &pdev->dev;
	ig->misc.mode = 0600;
	ret = misc_register(&ig->misc);
	if (ret) {
		dev_err(&pdev->dev, "misc_register: %d\n", ret);
		goto err_irqs;
	}
	pci_set_drvdata(pdev, ig);

	if (ig->ext)
		dev_info(&pdev->dev,
			 "/dev/%s: %llu KiB shared memory, peer ID %u, %u "
			 "MSI-X vectors, minivmm extension (peers %#llx%s%s)\n",
			 ig->name, (unsigned long long)ig->shm_size >> 10,
			 ig->own_id, ig->nvec, ivshmem_guest_peers(ig),
			 ig->status ? ", status page" : "",
			 ig->port ? ", doorbell port" : "");
	else
		dev_info(&pdev->dev,
			 "/dev/%s: %llu KiB shared memory, peer ID %u, %u "
			 "MSI-X vectors\n",
			 ig->name, (unsigned long long)ig->shm_size >> 10,
			 ig->own_id, ig->nvec);
	return 0;

err_irqs:
	ivshmem_guest_free_irqs(ig);
err_unmap:
	pci_clear_master(pdev);
	ivshmem_guest_unmap_extras(ig);
	pci_iounmap(pdev, ig->regs);
err_release:
	pci_release_region(pdev, 0);
err_disable:
	pci_disable_device(pdev);
err_ida:
	ida_free(&ivshmem_guest_ida, ig->index);
err_free:
	kref_put(&ig->ref, ivshmem_guest_free);
	return ret;
}

static void ivshmem_guest_remove(struct pci_dev *pdev)
{
	struct ivshmem_guest *ig = pci_get_drvdata(pdev);
	struct ivshmem_guest_file *f;

	/* No new opens after this; open files keep ig alive. */
	misc_deregister(&ig->misc);

	mutex_lock(&ig->lock);
	ig->gone = true;
	if (ig->ext)
		iowrite32(IVSHMEM_GUEST_VECTOR_OFF,
			  ig->regs + IVSHMEM_REG_PEERS_CHANGED_VECTOR);
	/* Take BAR2 away from processes that still map it. */
	list_for_each_entry(f, &ig->files, node)
		unmap_mapping_range(f->file->f_mapping, 0, 0, 1);
	mutex_unlock(&ig->lock);

	ivshmem_guest_free_irqs(ig);
	ivshmem_guest_unbind_eventfds(ig, NULL);
	wake_up_interruptible_all(&ig->wait);

	pci_clear_master(pdev);
	ivshmem_guest_unmap_extras(ig);
	pci_iounmap(pdev, ig->regs);
	pci_release_region(pdev, 0);
	pci_disable_device(pdev);
	ida_free(&ivshmem_guest_ida, ig->index);
	dev_info(&pdev->dev, "/dev/%s removed\n", ig->name);
	kref_put(&ig->ref, ivshmem_guest_free);
}

static const struct pci_device_id ivshmem_guest_ids[] = {
	{PCI_DEVICE(0x1af4, 0x1110)}, {}};
MODULE_DEVICE_TABLE(pci, ivshmem_guest_ids);

static struct pci_driver ivshmem_guest_driver = {
	.name = DRV_NAME,
	.id_table = ivshmem_guest_ids,
	.probe = ivshmem_guest_probe,
	.remove = ivshmem_guest_remove,
};

static int __init ivshmem_guest_init(void)
{
	return pci_register_driver(&ivshmem_guest_driver);
}

static void __exit ivshmem_guest_exit(void)
{
	pci_unregister_driver(&ivshmem_guest_driver);
	ida_destroy(&ivshmem_guest_ida);
}

module_init(ivshmem_guest_init);
module_exit(ivshmem_guest_exit);

MODULE_DESCRIPTION(
	"ivshmem (1af4:1110) shared memory and doorbells for user space");
MODULE_AUTHOR("minivmm");
MODULE_LICENSE("GPL");
