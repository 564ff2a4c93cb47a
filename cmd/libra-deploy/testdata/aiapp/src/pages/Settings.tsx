import { useState } from 'react'
import { useForm } from 'react-hook-form'
import { zodResolver } from '@hookform/resolvers/zod'
import { z } from 'zod'
import { toast } from 'sonner'
import { DayPicker } from 'react-day-picker'
import { Command } from 'cmdk'
import * as Label from '@radix-ui/react-label'
import * as Switch from '@radix-ui/react-switch'
import * as Checkbox from '@radix-ui/react-checkbox'
import * as RadioGroup from '@radix-ui/react-radio-group'
import * as Select from '@radix-ui/react-select'
import * as Slider from '@radix-ui/react-slider'
import { Button } from '@/components/ui/button'

const schema = z.object({
  name: z.string().min(2, 'Too short'),
  email: z.string().email(),
  plan: z.enum(['free', 'pro']),
})

type Values = z.infer<typeof schema>

export default function Settings() {
  const [day, setDay] = useState<Date | undefined>()
  const form = useForm<Values>({ resolver: zodResolver(schema), defaultValues: { name: '', email: '', plan: 'free' } })
  const onSubmit = (v: Values) => toast.success(`Saved ${v.name}`)
  return (
    <form className="grid gap-4 p-4" onSubmit={form.handleSubmit(onSubmit)}>
      <Label.Root htmlFor="name">Name</Label.Root>
      <input id="name" {...form.register('name')} />
      {form.formState.errors.name && <p>{form.formState.errors.name.message}</p>}
      <input {...form.register('email')} />
      <Switch.Root><Switch.Thumb /></Switch.Root>
      <Checkbox.Root><Checkbox.Indicator>✓</Checkbox.Indicator></Checkbox.Root>
      <RadioGroup.Root defaultValue="free"><RadioGroup.Item value="free" /><RadioGroup.Item value="pro" /></RadioGroup.Root>
      <Select.Root><Select.Trigger><Select.Value placeholder="Plan" /></Select.Trigger>
        <Select.Portal><Select.Content><Select.Viewport>
          <Select.Item value="free"><Select.ItemText>Free</Select.ItemText></Select.Item>
        </Select.Viewport></Select.Content></Select.Portal></Select.Root>
      <Slider.Root defaultValue={[50]}><Slider.Track><Slider.Range /></Slider.Track><Slider.Thumb /></Slider.Root>
      <DayPicker mode="single" selected={day} onSelect={setDay} />
      <Command><Command.Input /><Command.List><Command.Item>Profile</Command.Item></Command.List></Command>
      <Button type="submit">Save</Button>
    </form>
  )
}
