import * as Accordion from '@radix-ui/react-accordion'
import * as AlertDialog from '@radix-ui/react-alert-dialog'
import * as AspectRatio from '@radix-ui/react-aspect-ratio'
import * as Collapsible from '@radix-ui/react-collapsible'
import * as ContextMenu from '@radix-ui/react-context-menu'
import * as Dialog from '@radix-ui/react-dialog'
import * as DropdownMenu from '@radix-ui/react-dropdown-menu'
import * as HoverCard from '@radix-ui/react-hover-card'
import * as Menubar from '@radix-ui/react-menubar'
import * as NavigationMenu from '@radix-ui/react-navigation-menu'
import * as Popover from '@radix-ui/react-popover'
import * as Separator from '@radix-ui/react-separator'
import * as Tabs from '@radix-ui/react-tabs'
import * as Toggle from '@radix-ui/react-toggle'
import * as ToggleGroup from '@radix-ui/react-toggle-group'
import * as Tooltip from '@radix-ui/react-tooltip'
import { Bold, ChevronDown, Italic, Menu } from 'lucide-react'
import { Button } from '@/components/ui/button'

export default function Components() {
  return (
    <div className="grid gap-4 p-4">
      <Accordion.Root type="single" collapsible><Accordion.Item value="a">
        <Accordion.Trigger>Open <ChevronDown /></Accordion.Trigger><Accordion.Content>Content</Accordion.Content>
      </Accordion.Item></Accordion.Root>
      <AlertDialog.Root><AlertDialog.Trigger asChild><Button>Delete</Button></AlertDialog.Trigger>
        <AlertDialog.Portal><AlertDialog.Content><AlertDialog.Title>Sure?</AlertDialog.Title>
          <AlertDialog.Cancel>No</AlertDialog.Cancel><AlertDialog.Action>Yes</AlertDialog.Action></AlertDialog.Content></AlertDialog.Portal></AlertDialog.Root>
      <AspectRatio.Root ratio={16 / 9}><div className="bg-gray-100" /></AspectRatio.Root>
      <Collapsible.Root><Collapsible.Trigger>More</Collapsible.Trigger><Collapsible.Content>Hidden</Collapsible.Content></Collapsible.Root>
      <ContextMenu.Root><ContextMenu.Trigger>Right-click</ContextMenu.Trigger>
        <ContextMenu.Portal><ContextMenu.Content><ContextMenu.Item>Copy</ContextMenu.Item></ContextMenu.Content></ContextMenu.Portal></ContextMenu.Root>
      <Dialog.Root><Dialog.Trigger>Dialog</Dialog.Trigger><Dialog.Portal><Dialog.Overlay />
        <Dialog.Content><Dialog.Title>Title</Dialog.Title><Dialog.Close>Close</Dialog.Close></Dialog.Content></Dialog.Portal></Dialog.Root>
      <DropdownMenu.Root><DropdownMenu.Trigger><Menu /></DropdownMenu.Trigger>
        <DropdownMenu.Portal><DropdownMenu.Content><DropdownMenu.Item>One</DropdownMenu.Item></DropdownMenu.Content></DropdownMenu.Portal></DropdownMenu.Root>
      <HoverCard.Root><HoverCard.Trigger>Hover</HoverCard.Trigger><HoverCard.Portal><HoverCard.Content>Card</HoverCard.Content></HoverCard.Portal></HoverCard.Root>
      <Menubar.Root><Menubar.Menu><Menubar.Trigger>File</Menubar.Trigger>
        <Menubar.Portal><Menubar.Content><Menubar.Item>New</Menubar.Item></Menubar.Content></Menubar.Portal></Menubar.Menu></Menubar.Root>
      <NavigationMenu.Root><NavigationMenu.List><NavigationMenu.Item>
        <NavigationMenu.Link href="/">Home</NavigationMenu.Link></NavigationMenu.Item></NavigationMenu.List></NavigationMenu.Root>
      <Popover.Root><Popover.Trigger>Popover</Popover.Trigger><Popover.Portal><Popover.Content>Body</Popover.Content></Popover.Portal></Popover.Root>
      <Separator.Root />
      <Tabs.Root defaultValue="a"><Tabs.List><Tabs.Trigger value="a">A</Tabs.Trigger><Tabs.Trigger value="b">B</Tabs.Trigger></Tabs.List>
        <Tabs.Content value="a">Tab A</Tabs.Content><Tabs.Content value="b">Tab B</Tabs.Content></Tabs.Root>
      <Toggle.Root><Bold /></Toggle.Root>
      <ToggleGroup.Root type="multiple"><ToggleGroup.Item value="b"><Bold /></ToggleGroup.Item><ToggleGroup.Item value="i"><Italic /></ToggleGroup.Item></ToggleGroup.Root>
      <Tooltip.Root><Tooltip.Trigger>Tip</Tooltip.Trigger><Tooltip.Portal><Tooltip.Content>Hint</Tooltip.Content></Tooltip.Portal></Tooltip.Root>
    </div>
  )
}
